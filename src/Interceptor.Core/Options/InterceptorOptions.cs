namespace Interceptor.Core.Options;

/// <summary>
/// The whole configuration, as bound from the JSON file and SMTPI_ environment variables.
/// Every property has a default that suits a typical Debian host, so an empty <c>{}</c> is valid.
/// </summary>
public sealed record InterceptorOptions
{
    public ListenOptions Listen { get; init; } = new();
    public InterceptionOptions Interception { get; init; } = new();
    public RelayOptions Relay { get; init; } = new();
    public LimitsOptions Limits { get; init; } = new();
    public SmtpOptions Smtp { get; init; } = new();
    public StateOptions State { get; init; } = new();
    public ControlOptions Control { get; init; } = new();
    public SuspensionOptions Suspension { get; init; } = new();
    public AlertsOptions Alerts { get; init; } = new();
    public RoutesOptions Routes { get; init; } = new();
    public MetricsOptions Metrics { get; init; } = new();
    public TraceOptions Trace { get; init; } = new();
    public AttributionOptions Attribution { get; init; } = new();
    public ClientTlsOptions ClientTls { get; init; } = new();
    public ScanOptions Scan { get; init; } = new();
    public HoldOptions Hold { get; init; } = new();
    public DomainsOptions Domains { get; init; } = new();
    public FromPolicyOptions FromPolicy { get; init; } = new();
    public DkimOptions Dkim { get; init; } = new();
    public FairnessOptions Fairness { get; init; } = new();

    /// <summary>When a relay of the pool (or, in Auto mode, the host itself) counts as burned; see RelayPoolOptions.cs.</summary>
    public BurnOptions Burn { get; init; } = new();

    /// <summary>
    /// The longest a mail transaction can last: the session's bound, then the last write and the upstream's verdict after
    /// the final dot, which the session timeout does not cut (each a single deadline), and a margin for what has no
    /// timeout before the charge (a held message's fsyncs, the fair-share scheduler's turns, the spool's close). The
    /// quotas charge a message when its transaction ends, so the quota history reads this far before its window
    /// (<see cref="Policy.QuotaHistory"/>).
    /// </summary>
    public TimeSpan LongestTransaction => Smtp.SessionTimeout + Relay.ReplyTimeout + Relay.DataReplyTimeout + UntimedMargin;

    /// <summary>The margin in <see cref="LongestTransaction"/> for the work after the final dot that no timeout bounds.</summary>
    public static readonly TimeSpan UntimedMargin = TimeSpan.FromMinutes(15);
}

/// <summary>Where the daemon accepts redirected connections. Always loopback (127.0.0.1 and ::1): no open relay.</summary>
public sealed record ListenOptions
{
    /// <summary>
    /// Every customer's port-25 connection is redirected here, so no unprivileged user may ever be able to bind it
    /// (issue 12.1): it must be below net.ipv4.ip_unprivileged_port_start (1024 by default), which the daemon checks at
    /// start and in its watchdog. 24 is IANA's "any private mail system": a mail port that no standard service claims
    /// (Dovecot's LMTP examples use it too; where something else holds it, the daemon names the holder and refuses).
    /// </summary>
    public int Port { get; init; } = 24;

    /// <summary>
    /// SMTP sessions open at once, all users together; one more gets 421. 0 (the default) derives it from the file
    /// descriptor limit (<see cref="DescriptorBudget"/>): 10,000, or fewer when the limit is too low for that.
    /// </summary>
    public int MaxConnections { get; init; }
}

/// <summary>What the nftables table intercepts and whom it leaves alone.</summary>
public sealed record InterceptionOptions
{
    public IReadOnlyList<int> Ports { get; init; } = [25];

    /// <summary>Users whose connections are never redirected. The daemon's own user is always added.</summary>
    public IReadOnlyList<string> ExemptUsers { get; init; } = ["root"];

    public string Table { get; init; } = "smtp_interceptor";

    /// <summary>Ports that cannot be intercepted (implicit TLS such as 465) and are simply refused to non-exempt users.</summary>
    public IReadOnlyList<int> BlockedPorts { get; init; } = [];

    /// <summary>How often the daemon re-reads its table and restores it if it was deleted or changed.</summary>
    [ConfigurationKey("VerifyIntervalSeconds")]
    public TimeSpan VerifyInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Refused connections (not redirected, local destination, unknown owner) are logged once per cause and
    /// uid, then summarised with their count every this many seconds, so no flood can drown the log.
    /// </summary>
    [ConfigurationKey("RefusalSummarySeconds")]
    public TimeSpan RefusalSummaryInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The NFLOG group through which the kernel hands the daemon each packet its guard table refuses for having escaped
    /// the redirect (a SYN filed under a connection conntrack already has, an invalid or untracked packet), with the uid
    /// that sent it, so the log names the customer who tried. One process per group: pick another if something (ulogd)
    /// has this one. 0: the guard only counts them.
    /// </summary>
    public int StrayLogGroup { get; init; } = 25;
}

public enum RelayMode
{
    OriginalDestination,

    /// <summary>Everything through the relay pool (<see cref="RelayOptions.Smarthosts"/>).</summary>
    Smarthost,

    /// <summary>Direct while the host's own address is healthy, through the pool while it is burned.</summary>
    Auto,
}

/// <summary>How the daemon talks to the upstream server.</summary>
public sealed record RelayOptions
{
    public RelayMode Mode { get; init; } = RelayMode.OriginalDestination;

    /// <summary>
    /// The name we give in EHLO upstream and in our greeting. Empty (the default) means this host's name, which the
    /// configuration loader resolves once, and only for the commands that relay (no DNS lookup for check-config).
    /// </summary>
    public string HeloName { get; init; } = "";

    [ConfigurationKey("ConnectTimeoutSeconds")]
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long we wait for any upstream reply except the one after the final dot.</summary>
    [ConfigurationKey("ReplyTimeoutSeconds")]
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>How long we wait for the upstream's reply to the final dot (RFC 5321 suggests 10 minutes).</summary>
    [ConfigurationKey("DataReplyTimeoutSeconds")]
    public TimeSpan DataReplyTimeout { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>
    /// Destinations on this host (loopback or one of its own addresses) that may still be relayed to,
    /// as "host:port" or "[v6]:port". Anything else local is refused: relaying to ourselves is a loop or a bypass.
    /// </summary>
    public IReadOnlyList<string> PermittedLocalDestinations { get; init; } = ["127.0.0.1:25", "[::1]:25"];

    /// <summary>
    /// Keep an upstream session open after its client left and hand it to the next client going to the same
    /// destination (as Postfix's connection cache does): saves a connect, greeting and EHLO per message.
    /// </summary>
    public bool ReuseConnections { get; init; } = true;

    /// <summary>How long an unused upstream session is kept open (Postfix: smtp_connection_cache_time_limit, 2 s).</summary>
    [ConfigurationKey("ReuseIdleSeconds")]
    public TimeSpan ReuseIdleTime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>No session is handed on once it is this old (Postfix: smtp_connection_reuse_time_limit, 300 s).</summary>
    [ConfigurationKey("ReuseMaxSeconds")]
    public TimeSpan ReuseMaxAge { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>No session is handed on after this many messages; big providers limit messages per connection.</summary>
    public int ReuseMaxMessages { get; init; } = 100;

    /// <summary>At most this many unused sessions are kept per destination; more are closed with QUIT.</summary>
    public int ReuseMaxIdlePerDestination { get; init; } = 20;

    /// <summary>
    /// At most this many unused sessions are kept in all, every destination together: a local user opening sessions to
    /// many destinations cannot make the daemon hold thousands of idle upstream connections (and descriptors).
    /// </summary>
    public int ReuseMaxIdleTotal { get; init; } = 1000;

    /// <summary>
    /// A client silent this long between transactions gives its upstream session back (to the reuse cache, else it is
    /// ended with QUIT) and takes one again at its next MAIL: an idle script then pins neither a connection to the MX nor
    /// a descriptor here, which lets far more sessions wait than descriptors allow two each. Zero: a session keeps its
    /// upstream to the end, as before.
    /// </summary>
    [ConfigurationKey("IdleClientReleaseSeconds")]
    public TimeSpan IdleClientRelease { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Per-user <see cref="Mode"/> (e.g. one site always through the pool); see RelayPoolOptions.cs.</summary>
    public IReadOnlyDictionary<string, RelayMode> ModeByUser { get; init; } = new Dictionary<string, RelayMode>();

    /// <summary>The relay pool, in order; see <see cref="SmarthostOptions"/>.</summary>
    public IReadOnlyList<SmarthostOptions> Smarthosts { get; init; } = [];

    /// <summary>"USER LOGIN PASSWORD" lines for AUTH at the relays; empty: no AUTH. Readable by the daemon's user only.</summary>
    public string CredentialsFile { get; init; } = "";
}

/// <summary>Per-user limits: <c>Limits.Default</c>, overridden field by field in <c>Limits.Users.NAME</c>.</summary>
public sealed record LimitsOptions
{
    public QuotaLimits Default { get; init; } = QuotaLimits.Defaults;
    public IReadOnlyDictionary<string, QuotaLimits> Users { get; init; } = new Dictionary<string, QuotaLimits>();

    /// <summary>The limits that apply to a user: their override where set, the default otherwise. Every field is set.</summary>
    public QuotaLimits For(string? user)
    {
        var fallback = Default.Or(QuotaLimits.Defaults);
        return user is not null && Users.TryGetValue(user, out var own) ? own.Or(fallback) : fallback;
    }
}

/// <summary>One set of limits; null in a user override means "as the default". Windows slide (no fixed resets).</summary>
public sealed record QuotaLimits
{
    public static readonly QuotaLimits Defaults = new()
    {
        MessagesPerHour = 200,
        MessagesPerDay = 1000,
        RecipientsPerHour = 500,
        RecipientsPerDay = 2500,
        RecipientsPerMessage = 100,
        Connections = 20,
        MessageSizeBytes = 25L * 1024 * 1024,
        ConnectionsPerSecond = 20,
        ConnectionsBurst = 50,
    };

    public int? MessagesPerHour { get; init; }
    public int? MessagesPerDay { get; init; }
    public int? RecipientsPerHour { get; init; }
    public int? RecipientsPerDay { get; init; }
    public int? RecipientsPerMessage { get; init; }

    /// <summary>Concurrent connections of one user through the daemon.</summary>
    public int? Connections { get; init; }

    public long? MessageSizeBytes { get; init; }

    /// <summary>
    /// New connections per second one uid may open to the intercepted ports, enforced by the kernel (nft meter keyed on
    /// the socket's uid): over it the SYN gets a TCP reset and never reaches the daemon. 0: no limit.
    /// </summary>
    public int? ConnectionsPerSecond { get; init; }

    /// <summary>Connections a uid may open at once above <see cref="ConnectionsPerSecond"/> (the token bucket's depth).</summary>
    public int? ConnectionsBurst { get; init; }

    /// <summary>This record's fields where set, <paramref name="fallback"/>'s elsewhere.</summary>
    public QuotaLimits Or(QuotaLimits fallback) => new()
    {
        MessagesPerHour = MessagesPerHour ?? fallback.MessagesPerHour,
        MessagesPerDay = MessagesPerDay ?? fallback.MessagesPerDay,
        RecipientsPerHour = RecipientsPerHour ?? fallback.RecipientsPerHour,
        RecipientsPerDay = RecipientsPerDay ?? fallback.RecipientsPerDay,
        RecipientsPerMessage = RecipientsPerMessage ?? fallback.RecipientsPerMessage,
        Connections = Connections ?? fallback.Connections,
        MessageSizeBytes = MessageSizeBytes ?? fallback.MessageSizeBytes,
        ConnectionsPerSecond = ConnectionsPerSecond ?? fallback.ConnectionsPerSecond,
        ConnectionsBurst = ConnectionsBurst ?? fallback.ConnectionsBurst,
    };
}
/// <summary>Bounds of one inbound SMTP session; they protect the daemon from slow or hostile clients.</summary>
public sealed record SmtpOptions
{
    /// <summary>Longest wait for the next command or the next DATA bytes (RFC 5321 4.5.3.2: at least 5 minutes).</summary>
    [ConfigurationKey("IdleTimeoutSeconds")]
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Longest a whole connection may last, however busy.</summary>
    [ConfigurationKey("SessionTimeoutSeconds")]
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(3600);

    /// <summary>Longest command line, CRLF included (RFC 5321 says 512; extensions need more).</summary>
    [ConfigurationKey("MaxCommandLineBytes")]
    public ByteSize MaxCommandLine { get; init; } = ByteSize.FromBytes(2048);

    /// <summary>Longest line inside DATA, CRLF included. Lines are streamed, so this bounds no memory; it stops line-splitting tricks.</summary>
    [ConfigurationKey("MaxDataLineBytes")]
    public ByteSize MaxDataLine { get; init; } = ByteSize.FromBytes(65536);

    /// <summary>A command line must be complete this long after its first byte (stops one-byte-at-a-time trickles).</summary>
    [ConfigurationKey("CommandLineTimeoutSeconds")]
    public TimeSpan CommandLineTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>After <see cref="DataRateGrace"/> of DATA, a client sending slower than this on average is disconnected.</summary>
    [ConfigurationKey("MinDataBytesPerSecond")]
    public DataRate MinDataRate { get; init; } = DataRate.FromBytesPerSecond(1024);

    /// <summary>How long DATA may take before <see cref="MinDataRate"/> applies (a slow start is not a trickle).</summary>
    [ConfigurationKey("DataRateGraceSeconds")]
    public TimeSpan DataRateGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After this many refused commands, each further reply is delayed (as Postfix's smtpd_soft_error_limit).</summary>
    public int SoftErrorLimit { get; init; } = 10;

    /// <summary>After this many refused commands the session is closed with 421 (smtpd_hard_error_limit).</summary>
    public int HardErrorLimit { get; init; } = 20;

    /// <summary>The delay added to each reply once past <see cref="SoftErrorLimit"/>.</summary>
    [ConfigurationKey("ErrorDelayMilliseconds")]
    public TimeSpan ErrorDelay { get; init; } = TimeSpan.FromMilliseconds(1000);
}

/// <summary>Where the accounting database lives (events, counters, suspensions).</summary>
public sealed record StateOptions
{
    public string Directory { get; init; } = "/var/lib/smtp-interceptor";

    /// <summary>Transactions and refusals older than this are deleted (hourly); suspensions are kept.</summary>
    [ConfigurationKey("RetentionDays")]
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>
    /// The most the database may hold (its used pages; the WAL adds a few MiB). Above it the oldest rows are pruned
    /// (checked every few seconds), with a log line and an alert; the last day's deliveries, which the quotas need,
    /// go last. Also pruned when the state filesystem has less than <see cref="MinFree"/> free.
    /// </summary>
    [ConfigurationKey("MaxBytes")]
    public ByteSize MaxSize { get; init; } = ByteSize.FromBytes(1L << 30);

    /// <summary>Free space to keep on the state filesystem: below it the store prunes as if over <see cref="MaxSize"/>.</summary>
    [ConfigurationKey("MinFreeBytes")]
    public ByteSize MinFree { get; init; } = ByteSize.FromBytes(256L << 20);
}

/// <summary>The admin's Unix socket; only root and members of <see cref="AdminGroup"/> may use it.</summary>
public sealed record ControlOptions
{
    public string SocketPath { get; init; } = "/run/smtp-interceptor/control.sock";

    /// <summary>A group whose members may use the admin commands besides root; empty for root only.</summary>
    public string AdminGroup { get; init; } = "";
}

/// <summary>When a user is suspended automatically (what cPanel calls the failed/deferred limit, and more).</summary>
public sealed record SuspensionOptions
{
    /// <summary>Suspend after this many quota refusals within <see cref="RefusalWindow"/>; 0 disables.</summary>
    public int RefusalLimit { get; init; } = 50;

    [ConfigurationKey("RefusalWindowMinutes")]
    public TimeSpan RefusalWindow { get; init; } = TimeSpan.FromMinutes(60);

    /// <summary>
    /// Suspend after this many transactions that relayed nothing (MAIL refused, MAIL+RSET loops, clients leaving after
    /// MAIL or during DATA) within <see cref="RefusalWindow"/>; 0 disables. Generous: address probes by legitimate code do
    /// this too.
    /// </summary>
    public int UnsentLimit { get; init; } = 1000;

    /// <summary>Suspend when this share (percent) of a user's transactions is rejected or deferred upstream; 0 disables.</summary>
    public int FailureRatioPercent { get; init; } = 80;

    /// <summary>... once at least this many transactions were seen within <see cref="FailureWindow"/>.</summary>
    public int FailureMinimum { get; init; } = 20;

    [ConfigurationKey("FailureWindowMinutes")]
    public TimeSpan FailureWindow { get; init; } = TimeSpan.FromMinutes(60);

    /// <summary>
    /// After this many of a user's messages failed on our side (a scan that timed out or could not run, a spool or hold the
    /// disk could not keep) within <see cref="LocalFailureWindow"/>, her new messages are refused at MAIL with a 451 for
    /// <see cref="LocalFailureCooldown"/>, then let through one at a time until one gets through our stages. Never
    /// suspends (another user may be what made us fail); 0 disables. See <see cref="Policy.LocalFailureBreaker"/>.
    /// </summary>
    public int LocalFailureLimit { get; init; } = 5;

    [ConfigurationKey("LocalFailureWindowMinutes")]
    public TimeSpan LocalFailureWindow { get; init; } = TimeSpan.FromMinutes(10);

    [ConfigurationKey("LocalFailureCooldownSeconds")]
    public TimeSpan LocalFailureCooldown { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Refuse (the kernel refuses an automatically suspended user's connections) or Hold (they are accepted and every
    /// message is held for review). A suspension by an admin always refuses.
    /// </summary>
    public SuspensionAction Action { get; init; } = SuspensionAction.Refuse;
}

/// <summary>An admin command run on every suspension, with SMTPI_UID, SMTPI_USER, SMTPI_REASON, ... in its environment.</summary>
public sealed record AlertsOptions
{
    public string Command { get; init; } = "";
    [ConfigurationKey("TimeoutSeconds")]
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Fair share between users beyond the daemon's own turns: while the machine's CPU is contended, a user flooding
/// through the daemon (four or more sessions with work at once) while other users send has its relaying paced, so the
/// flood's clients and upstream give the cores back too.
/// </summary>
public sealed record FairnessOptions
{
    /// <summary>
    /// The CPU pressure (Linux PSI, /proc/pressure/cpu "some": the share of time a runnable task waited for a CPU) above
    /// which a flood among other users is paced more, in percent; under half of it the pace eases until it is gone.
    /// 0: never paced (the turns and the flood's nice value still apply).
    /// </summary>
    public int PaceAbovePressurePercent { get; init; } = 80;

    /// <summary>The share of one core, in percent, a paced flood's relaying keeps however contended the CPU is.</summary>
    public int PacedMinimumPercent { get; init; } = 10;
}

/// <summary>Per-user destinations that bypass the daemon (e.g. a mail-testing service), as "host:port".</summary>
public sealed record RoutesOptions
{
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Users { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
}

/// <summary>Prometheus metrics over HTTP on a loopback address; off unless <see cref="Listen"/> is set.</summary>
public sealed record MetricsOptions
{
    /// <summary>e.g. "127.0.0.1:9325"; empty disables the endpoint.</summary>
    public string Listen { get; init; } = "";

    /// <summary>Adds per-user series (one label per sending user); off by default to bound cardinality.</summary>
    public bool PerUser { get; init; }

    /// <summary>
    /// The users the scraper runs as (names or uids; root always counts): two of the endpoint's connections are kept for
    /// them, which other users' connections never take.
    /// </summary>
    public IReadOnlyList<string> ScraperUsers { get; init; } = [];

    /// <summary>
    /// A file (mode 0600, the daemon's user's) holding a token every scrape must send as <c>Authorization: Bearer TOKEN</c>;
    /// empty: none asked. A process of a scraper user that fetches URLs for others (an exporter's probe) has no token.
    /// </summary>
    public string BearerTokenFile { get; init; } = "";
}

/// <summary>What the trace header carries besides uid, user, host and id.</summary>
public sealed record TraceOptions
{
    /// <summary>Adds the pid and executable behind the socket, when found in time (best effort).</summary>
    public bool IncludeProcess { get; init; }
}

/// <summary>What to do with a uid that has no passwd entry and is no subordinate uid (/etc/subuid) of a user who has one.</summary>
public enum UnknownUidHandling
{
    /// <summary>Refuse at the greeting with 421 4.7.1 (the default): mail of unknown origin is not relayed.</summary>
    Refuse,

    /// <summary>Relay under the bare number (<c>user=#400000</c>), with the default limits, as before 12.4.</summary>
    Relay,
}

/// <summary>Who a connection is charged to, beyond the socket's own uid.</summary>
public sealed record AttributionOptions
{
    /// <summary>
    /// A uid without an account is either a subordinate uid (charged to its owner from /etc/subuid) or of unknown
    /// origin; the latter are refused unless this says Relay.
    /// </summary>
    public UnknownUidHandling UnknownUids { get; init; } = UnknownUidHandling.Refuse;
}
