# Figure 3: linear top-1 against beta_base: training curves of Fashion-MNIST [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_fashion-mnist_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_fashion-mnist_quick.png'
set multiplot layout 2,2 title 'fig3_beta: Fashion-MNIST [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:2 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:2 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:2 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:2 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:2 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:2 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:3 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:3 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:3 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:3 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:3 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:3 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:4 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:4 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:4 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:4 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:4 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:4 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:5 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:5 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:5 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:5 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:5 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:5 with linespoints title '0.8'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_fashion-mnist_quick.svg'
set multiplot layout 2,2 title 'fig3_beta: Fashion-MNIST [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:2 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:2 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:2 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:2 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:2 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:2 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:3 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:3 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:3 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:3 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:3 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:3 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:4 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:4 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:4 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:4 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:4 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:4 with linespoints title '0.8'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-rsa-ma-e12-s0-7e8700ce81.epochs.tsv' using 1:5 with linespoints title '0.0', 'data/fashionmnist-rsa-ma-e12-s0-da22cddf03.epochs.tsv' using 1:5 with linespoints title '0.2', 'data/fashionmnist-rsa-ma-e12-s0-8f7338cebc.epochs.tsv' using 1:5 with linespoints title '0.4', 'data/fashionmnist-rsa-ma-e12-s0-d888c243b1.epochs.tsv' using 1:5 with linespoints title '0.5', 'data/fashionmnist-rsa-ma-e12-s0-6bc498122a.epochs.tsv' using 1:5 with linespoints title '0.6', 'data/fashionmnist-rsa-ma-e12-s0-2c053c3366.epochs.tsv' using 1:5 with linespoints title '0.8'
unset multiplot
