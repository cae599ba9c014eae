# Table 3: ImageNet-100, linear top-1 (%): training curves of 100 ep [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_100_ep_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_100_ep_quick.png'
set multiplot layout 2,2 title 'table3: 100 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_100_ep_quick.svg'
set multiplot layout 2,2 title 'table3: 100 ep [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:2 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:2 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:2 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:2 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:2 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:3 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:3 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:3 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:3 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:3 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:4 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:4 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:4 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:4 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:4 with linespoints title 'RSA'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-simclr-aa-e4-s0-f15d358f0b.epochs.tsv' using 1:5 with linespoints title 'SimCLR', 'data/fashionmnist-mocov2-aa-e4-s0-439496dc0d.epochs.tsv' using 1:5 with linespoints title 'MoCo v2', 'data/fashionmnist-simsiam-aa-e4-s0-7a3eb71644.epochs.tsv' using 1:5 with linespoints title 'SimSiam', 'data/fashionmnist-byol-aa-e4-s0-76c0863f5e.epochs.tsv' using 1:5 with linespoints title 'BYOL', 'data/fashionmnist-rsa-ma-e4-s0-95113c9922.epochs.tsv' using 1:5 with linespoints title 'RSA'
unset multiplot
