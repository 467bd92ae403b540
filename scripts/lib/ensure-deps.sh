# Installs the system packages the daemon, its demo and its tests need, when they are missing.
# Sourced by scripts/run and scripts/test; needs root (as on the hosts the daemon is for).
ensure_deps() {
    local missing=()
    command -v nft >/dev/null 2>&1 || missing+=(nftables)
    command -v swaks >/dev/null 2>&1 || missing+=(swaks)
    [ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
    # newuidmap (setuid) lets the sub-UID tests map a range of /etc/subuid, as a customer's unshare would.
    [ -x /usr/bin/newuidmap ] || missing+=(uidmap)
    [ -x /usr/bin/python3 ] || missing+=(python3)
    command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
    # STARTTLS towards clients (issue 18): real clients that require TLS, PHPMailer and openssl s_client.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v php >/dev/null 2>&1 || missing+=(php-cli)
    [ -f /usr/share/php/libphp-phpmailer/autoload.php ] || missing+=(libphp-phpmailer)
    # The relay pool's tests: a local DNS server for DNSBL zones, and Cyrus SASL's saslpasswd2 for the Postfix relays.
    [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
    [ -x /usr/sbin/saslpasswd2 ] || missing+=(sasl2-bin)
    # Content scanning's tests (and the benchmark's scanning row): a real SpamAssassin daemon.
    [ -x /usr/sbin/spamd ] || missing+=(spamassassin spamd)
    # DKIM (issue 17): an independent verifier, dkimpy, with Ed25519 support (python3-nacl).
    [ -x /usr/bin/dkimverify ] || missing+=(python3-dkim python3-nacl)
    # The booted-package test: builds a Debian 12 root and boots it with systemd as PID 1.
    command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
    command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
    # promtool checks and unit-tests the shipped alert rules (packaging/monitoring/).
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages: ${missing[*]} (run as root, or: apt-get install -y ${missing[*]})" >&2
            return 1
        fi
        echo "installing: ${missing[*]}" >&2
        # postfix asks a debconf question; "No configuration" keeps it from touching the host's mail setup.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        # Only promtool is wanted: a host with systemd would also get a running Prometheus server from the package.
        if [[ " ${missing[*]} " == *" prometheus "* ]]; then
            if [ -d /run/systemd/system ]; then
                systemctl disable --now prometheus.service >&2 || true
            elif [ -x /etc/init.d/prometheus ]; then
                /etc/init.d/prometheus stop >&2 || true
            fi
        fi
    fi
    if ! command -v dotnet >/dev/null 2>&1; then
        echo "the .NET 10 SDK (dotnet) is not on PATH; install it first" >&2
        return 1
    fi
}
