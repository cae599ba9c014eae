# Table 3: ImageNet-100, linear top-1 (%): training curves of 200 ep [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_200_ep_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_200_ep_quick.png'
set multiplot layout 2,2 title 'table3: 200 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_200_ep_quick.svg'
set multiplot layout 2,2 title 'table3: 200 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e8-s0-ef6053da36.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e8-s0-9704636d04.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e8-s0-3cb90f7863.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e8-s0-c6e41ab8fe.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e8-s0-d3183c9a3b.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
