# Table 4: ImageNet-1K, linear top-1 (%): training curves of Fashion-MNIST [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_fashion-mnist_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_fashion-mnist_quick.png'
set multiplot layout 2,2 title 'table4: Fashion-MNIST [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:2 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:2 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:3 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:3 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:4 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:4 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:5 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:5 with linespoints title 'RSA (200 ep)'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_fashion-mnist_quick.svg'
set multiplot layout 2,2 title 'table4: Fashion-MNIST [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:2 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:2 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:3 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:3 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:4 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:4 with linespoints title 'RSA (200 ep)'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-rsa-ma-e4-s0-379c14caf2.epochs.tsv' using 1:5 with linespoints title 'RSA (100 ep)', 'data/fashionmnist-rsa-ma-e8-s0-39f269adac.epochs.tsv' using 1:5 with linespoints title 'RSA (200 ep)'
unset multiplot
