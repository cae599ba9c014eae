# beta, tau and lr per step of run fashionmnist-simsiam-aa-e4-s1-5131735541: dataset=Fashion-MNIST length=200 ep arm=SimSiam seed=1, from steps.tsv (written by the trainer).
# Edit and re-render with: gnuplot schedules.gp
set datafile separator tab
set grid
set xlabel 'step'
set terminal pngcairo noenhanced size 900,900
set output 'schedules.png'
set multiplot layout 3,1 title "fashionmnist-simsiam-aa-e4-s1-5131735541: dataset=Fashion-MNIST length=200 ep arm=SimSiam seed=1" noenhanced
set ylabel 'beta'
plot 'steps.tsv' using 1:6 with lines title 'beta'
set ylabel 'tau'
plot 'steps.tsv' using 1:7 with lines title 'tau (EMA)'
set ylabel 'lr'
plot 'steps.tsv' using 1:8 with lines title 'learning rate'
unset multiplot
set terminal svg noenhanced size 900,900
set output 'schedules.svg'
set multiplot layout 3,1 title "fashionmnist-simsiam-aa-e4-s1-5131735541: dataset=Fashion-MNIST length=200 ep arm=SimSiam seed=1" noenhanced
set ylabel 'beta'
plot 'steps.tsv' using 1:6 with lines title 'beta'
set ylabel 'tau'
plot 'steps.tsv' using 1:7 with lines title 'tau (EMA)'
set ylabel 'lr'
plot 'steps.tsv' using 1:8 with lines title 'learning rate'
unset multiplot
