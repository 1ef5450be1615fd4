# Failures and p99 latency per second, per front end and PHP-FPM event, from timeline.csv.
#   gnuplot -e "dir='target/bench'" bench/plot.gp    -> target/bench/timeline.png
if (!exists("dir")) dir = 'target/bench'
data = dir.'/timeline.csv'
set terminal pngcairo size 1500,1600 font ",10"
set output dir.'/timeline.png'
set datafile separator ","
set key outside right top vertical
set grid
set logscale y
set xlabel "second of the run (the event starts at 2)"

front_ends = "apache-stock apache+module apache+module+idempotent nginx haproxy caddy"
events = "restart helper-restart restart+2s-gap reload(USR2)"
# Only this row's front end and event; anything else is not drawn.
pick(fe, ev, value) = (strcol(1) eq fe && strcol(2) eq ev) ? value : NaN

set multiplot layout 4,2 title "PHP-FPM events under load: failures and latency per second"
do for [ev in events] {
    set title ev." - failed requests per second (log scale; 0 is not drawn)"
    set ylabel "failed"
    plot for [fe in front_ends] data skip 1 using 3:(pick(fe, ev, $5)) with linespoints title fe
    set title ev." - p99 latency per second"
    set ylabel "p99 ms"
    plot for [fe in front_ends] data skip 1 using 3:(pick(fe, ev, $6)) with linespoints title fe
}
unset multiplot
