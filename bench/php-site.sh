# Sourced by bench/syscalls.sh and bench/instructions.sh: a php-fpm pool and an Apache
# configuration serving one PHP script through it, in a directory of their own.

# Writes $dir/www/index.php and starts a php-fpm pool on $dir/php.sock; sets fpm_pid.
start_php_fpm() {
    local dir=$1
    mkdir -m 755 "$dir/www"
    echo '<?php echo "ok\n";' > "$dir/www/index.php"
    cat > "$dir/fpm.conf" <<CONF
[global]
pid = $dir/fpm.pid
error_log = $dir/fpm.log
daemonize = no
[www]
user = www-data
group = www-data
listen = $dir/php.sock
listen.mode = 0666
pm = static
pm.max_children = 2
CONF
    local fpm
    fpm=$(ls /usr/sbin/php-fpm* | sort | tail -1)
    setsid "$fpm" -n -y "$dir/fpm.conf" -F >/dev/null 2>&1 &
    fpm_pid=$!
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Writes $dir/httpd.conf: event MPM, the module loaded with `FcgiResilient $mode`, .php
# files handed to the pool; extra directives (MPM sizing) come on standard input.
write_httpd_conf() {
    local dir=$1 port=$2 module=$3 mode=$4
    {
        cat <<CONF
ServerRoot $dir
ServerName localhost
Listen 127.0.0.1:$port
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
LoadModule fcgi_resilient_module $module
FcgiResilient $mode
User www-data
Group www-data
DocumentRoot $dir/www
<Directory $dir/www>
    AllowOverride None
    Require all granted
</Directory>
<FilesMatch "\.php$">
    SetHandler "proxy:unix:$dir/php.sock|fcgi://localhost"
</FilesMatch>
CONF
        cat
    } > "$dir/httpd.conf"
}
