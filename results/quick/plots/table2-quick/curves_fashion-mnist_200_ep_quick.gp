# Table 2: RSA against contrastive and non-contrastive methods, linear top-1 (%): training curves of Fashion-MNIST, 200 ep [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_fashion-mnist_200_ep_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_fashion-mnist_200_ep_quick.png'
set multiplot layout 2,2 title 'table2: Fashion-MNIST, 200 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_fashion-mnist_200_ep_quick.svg'
set multiplot layout 2,2 title 'table2: Fashion-MNIST, 200 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e4-s0-ed8b818d7e.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-8442436dca.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-0e468e38e1.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-49d4dc4675.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-fe30f58972.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
