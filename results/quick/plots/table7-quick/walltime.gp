# Table 7: training time, RSA against BYOL: hours of pretraining, ours (measured here) and the paper's (V100s). Edit and re-render with: gnuplot walltime.gp
set datafile separator tab
set datafile missing 'nan'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid y
set ylabel 'hours'
set logscale y
set key below
set xtics rotate by -20
set terminal pngcairo noenhanced size 900,600
set output 'walltime.png'
set title 'Training time, RSA against BYOL (ours: scale quick)'
plot for [i=2:5] 'walltime.tsv' using i:xtic(1) title columnhead(i)
set terminal svg noenhanced size 900,600
set output 'walltime.svg'
set title 'Training time, RSA against BYOL (ours: scale quick)'
plot for [i=2:5] 'walltime.tsv' using i:xtic(1) title columnhead(i)
