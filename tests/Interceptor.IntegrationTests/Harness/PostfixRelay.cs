using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A real Postfix relay for the relay-pool tests (issue 15): its own instance (<c>postfix -c DIR start-fg</c>, own
/// main.cf, master.cf, queue and data directories), listening on <c>ADDRESS:587</c> on its own loopback address
/// inside the test's namespace, requiring STARTTLS (certificate from a throwaway test CA, <see cref="CaFile"/>) and
/// SASL AUTH (Cyrus sasldb, accounts made with saslpasswd2), and relaying everything it accepts to
/// <c>nextHop</c> (the harness's fake MX). Its log (<see cref="MailLog"/>) shows <c>sasl_username=</c> per message.
/// Everything is removed on dispose, and on a failed start.
/// </summary>
public sealed class PostfixRelay : IAsyncDisposable
{
    public const int Port = 587;

    private readonly NetworkNamespace _ns;
    private readonly string _directory;
    private BackgroundProcess? _master;

    private PostfixRelay(NetworkNamespace ns, string name, string address, string directory)
    {
        _ns = ns;
        Name = name;
        Address = address;
        _directory = directory;
    }

    public string Name { get; }

    /// <summary>The loopback address it listens on (e.g. 127.0.0.3), also in its certificate.</summary>
    public string Address { get; }

    /// <summary>The host name in its certificate and its SASL realm: <c>NAME.relay.test</c>.</summary>
    public string HostName => Name + ".relay.test";

    public string EndPoint => $"{Address}:{Port}";

    /// <summary>The test CA's certificate (PEM) that signed the relay's certificate.</summary>
    public string CaFile => Path.Combine(_directory, "etc", "ca.pem");

    private string ConfigDirectory => Path.Combine(_directory, "etc");

    private string MailLogPath => Path.Combine(_directory, "maillog");

    /// <summary>The relay's log so far (Postfix's maillog_file).</summary>
    public string MailLog() => File.Exists(MailLogPath) ? File.ReadAllText(MailLogPath) : "";

    /// <param name="logins">SASL accounts: login (without realm) → password.</param>
    /// <param name="nextHop">Where it relays to, as Postfix's relayhost, e.g. "[127.0.0.2]:25".</param>
    /// <param name="extraMainCf">main.cf lines added at the end (e.g. restrictions that make it answer like a blocked relay).</param>
    public static async Task<PostfixRelay> StartAsync(
        NetworkNamespace ns, string name, string address, string nextHop, IReadOnlyDictionary<string, string> logins, string extraMainCf = "")
    {
        // Postfix's daemons run as the postfix user and must reach the queue: a world-traversable directory under /tmp.
        var directory = Directory.CreateTempSubdirectory($"smtpi-postfix-{name}-").FullName;
        File.SetUnixFileMode(directory, (UnixFileMode)Convert.ToInt32("755", 8));
        var relay = new PostfixRelay(ns, name, address, directory);
        try
        {
            await relay.ConfigureAsync(nextHop, logins, extraMainCf);
            await ProcessRunner.RunCheckedAsync("ip", "-n", ns.Name, "addr", "add", address + "/32", "dev", "lo");
            relay._master = ns.StartBackground("postfix-" + name, "postfix", ["-c", relay.ConfigDirectory, "start-fg"]);
            if (!await ns.WaitForListenerAsync(relay.EndPoint, TimeSpan.FromSeconds(30)))
            {
                throw new InvalidOperationException($"Postfix relay {name} did not listen on {relay.EndPoint}:\n{relay.Describe()}");
            }

            return relay;
        }
        catch
        {
            await relay.DisposeAsync();
            throw;
        }
    }

    public string Describe() =>
        $"--- postfix {Name} master ---\n{_master?.Transcript()}\n--- postfix {Name} maillog ---\n{MailLog()}";

    private async Task ConfigureAsync(string nextHop, IReadOnlyDictionary<string, string> logins, string extraMainCf)
    {
        var etc = Directory.CreateDirectory(ConfigDirectory).FullName;
        Directory.CreateDirectory(Path.Combine(etc, "sasl"));
        Directory.CreateDirectory(Path.Combine(_directory, "queue"));
        var data = Directory.CreateDirectory(Path.Combine(_directory, "data")).FullName;
        await CreateCertificatesAsync(etc);
        File.WriteAllText(Path.Combine(etc, "main.cf"), MainCf(nextHop) + extraMainCf + "\n");
        File.WriteAllText(Path.Combine(etc, "master.cf"), MasterCf);
        var sasldb = Path.Combine(etc, "sasldb2");
        File.WriteAllText(Path.Combine(etc, "sasl", "smtpd.conf"), $"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {sasldb}\n");
        foreach (var (login, password) in logins)
        {
            // saslpasswd2 -p reads the password from standard input.
            await ProcessRunner.RunCheckedAsync("sh", "-c", "printf '%s' \"$1\" | saslpasswd2 -p -c -f \"$2\" -u \"$3\" \"$4\"", "sh", password, sasldb, HostName, login);
        }

        // smtpd (user postfix) reads the accounts; the data directory holds its TLS session cache.
        await ProcessRunner.RunCheckedAsync("chown", "postfix", sasldb, data);
        File.SetUnixFileMode(sasldb, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private async Task CreateCertificatesAsync(string etc)
    {
        string In(string file) => Path.Combine(etc, file);
        await ProcessRunner.RunCheckedAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", In("ca.key"), "-out", In("ca.pem"),
            "-days", "2", "-subj", "/CN=smtp-interceptor test CA " + Name);
        await ProcessRunner.RunCheckedAsync("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", In("key.pem"), "-out", In("req.csr"), "-subj", "/CN=" + HostName);
        File.WriteAllText(In("ext.cnf"), $"subjectAltName=DNS:{HostName},IP:{Address}\n");
        await ProcessRunner.RunCheckedAsync("openssl", "x509", "-req", "-in", In("req.csr"), "-CA", In("ca.pem"), "-CAkey", In("ca.key"), "-CAcreateserial",
            "-out", In("cert.pem"), "-days", "2", "-extfile", In("ext.cnf"));
    }

    private string MainCf(string nextHop) => string.Create(CultureInfo.InvariantCulture, $"""
        compatibility_level = 3.6
        queue_directory = {_directory}/queue
        data_directory = {_directory}/data
        mail_owner = postfix
        setgid_group = postdrop
        myhostname = {HostName}
        mydestination =
        inet_interfaces = {Address}
        inet_protocols = ipv4
        mynetworks =
        relayhost = {nextHop}
        alias_maps =
        alias_database =
        local_recipient_maps =
        smtputf8_enable = no
        maillog_file_prefixes = {_directory}
        maillog_file = {MailLogPath}
        smtpd_sasl_auth_enable = yes
        smtpd_sasl_type = cyrus
        smtpd_sasl_path = smtpd
        cyrus_sasl_config_path = {_directory}/etc/sasl
        smtpd_sasl_local_domain = {HostName}
        smtpd_tls_security_level = encrypt
        smtpd_tls_auth_only = yes
        smtpd_tls_chain_files = {_directory}/etc/key.pem, {_directory}/etc/cert.pem
        smtpd_relay_restrictions = permit_sasl_authenticated, reject
        smtp_tls_security_level = none

        """);

    private const string MasterCf = """
        # service type  private unpriv  chroot  wakeup  maxproc command
        587       inet  n       -       n       -       -       smtpd
        pickup    unix  n       -       n       60      1       pickup
        cleanup   unix  n       -       n       -       0       cleanup
        qmgr      unix  n       -       n       300     1       qmgr
        tlsmgr    unix  -       -       n       1000?   1       tlsmgr
        rewrite   unix  -       -       n       -       -       trivial-rewrite
        bounce    unix  -       -       n       -       0       bounce
        defer     unix  -       -       n       -       0       bounce
        trace     unix  -       -       n       -       0       bounce
        verify    unix  -       -       n       -       1       verify
        flush     unix  n       -       n       1000?   0       flush
        proxymap  unix  -       -       n       -       -       proxymap
        smtp      unix  -       -       n       -       -       smtp
        relay     unix  -       -       n       -       -       smtp
        showq     unix  n       -       n       -       -       showq
        error     unix  -       -       n       -       -       error
        retry     unix  -       -       n       -       -       error
        discard   unix  -       -       n       -       -       discard
        anvil     unix  -       -       n       -       1       anvil
        scache    unix  -       -       n       -       1       scache
        postlog   unix-dgram n  -       n       -       1       postlogd

        """;

    public async ValueTask DisposeAsync()
    {
        if (_master is not null)
        {
            // "stop" lets master end its children; the process dispose then only reaps (or kills what is left).
            await _ns.RunAsync("postfix", ["-c", ConfigDirectory, "stop"], TimeSpan.FromSeconds(20));
            await _master.WaitForExitAsync(TimeSpan.FromSeconds(10));
            await _master.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // a straggling daemon still writing: the namespace's deletion ends it; /tmp is cleaned later
        }
    }
}
