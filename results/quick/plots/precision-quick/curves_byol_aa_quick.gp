# Mixed precision: linear top-1 (%) after pretraining in fp32, bf16 and fp16: training curves of BYOL (AA) [quick], one curve per method (first seed).
# Edit and re-render with: gnuplot curves_byol_aa_quick.gp (data in data/, copied from the run directories)
set datafile separator tab
set key autotitle columnhead
set grid
set key below
# epochs without a kNN monitor hold -1: missing, and lines join the others
set datafile missing '-1.0000'
set terminal pngcairo noenhanced size 1200,900
set output 'curves_byol_aa_quick.png'
set multiplot layout 2,2 title 'precision: BYOL (AA) [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:2 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:2 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:2 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:2 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:3 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:3 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:3 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:3 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:4 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:4 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:4 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:4 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:5 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:5 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:5 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:5 with linespoints title 'bf16, weight gradients in bf16'
unset multiplot
set terminal svg noenhanced size 1200,900
set output 'curves_byol_aa_quick.svg'
set multiplot layout 2,2 title 'precision: BYOL (AA) [quick]'
set xlabel 'epoch'
set ylabel 'loss'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:2 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:2 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:2 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:2 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'loss_w'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:3 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:3 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:3 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:3 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'loss_a'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:4 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:4 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:4 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:4 with linespoints title 'bf16, weight gradients in bf16'
set xlabel 'epoch'
set ylabel 'knn_top1'
plot 'data/fashionmnist-byol-aa-e12-s0-2dffe30c36.epochs.tsv' using 1:5 with linespoints title 'fp32', 'data/fashionmnist-byol-aa-e12-s0-5709ab0500.epochs.tsv' using 1:5 with linespoints title 'bf16', 'data/fashionmnist-byol-aa-e12-s0-5f210c6dcd.epochs.tsv' using 1:5 with linespoints title 'fp16 (loss scaling)', 'data/fashionmnist-byol-aa-e12-s0-b59b0053ab.epochs.tsv' using 1:5 with linespoints title 'bf16, weight gradients in bf16'
unset multiplot
