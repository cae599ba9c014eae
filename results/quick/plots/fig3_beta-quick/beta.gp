# Figure 3: linear top-1 against beta_base. Edit and re-render with: gnuplot beta.gp
set datafile separator tab
set grid
set xlabel 'beta_base'
set ylabel 'linear top-1 (%)'
set key below
set arrow 1 from 0.3, graph 0 to 0.3, graph 1 nohead dashtype 2
set label 1 "paper best: CIFAR-100" at 0.3, graph 0.05 rotate by 90 offset -1,0
set arrow 2 from 0.4, graph 0 to 0.4, graph 1 nohead dashtype 2
set label 2 "paper best: ImageNet-100, STL-10" at 0.4, graph 0.05 rotate by 90 offset -1,0
set offsets 0.05, 0.05, 0, 0
set terminal pngcairo noenhanced size 900,600
set output 'beta.png'
set title 'Figure 3: linear top-1 against beta_base (scale quick)'
plot 'beta.tsv' index 0 using 2:3:4 with yerrorlines title 'Fashion-MNIST [quick]'
set terminal svg noenhanced size 900,600
set output 'beta.svg'
set title 'Figure 3: linear top-1 against beta_base (scale quick)'
plot 'beta.tsv' index 0 using 2:3:4 with yerrorlines title 'Fashion-MNIST [quick]'
