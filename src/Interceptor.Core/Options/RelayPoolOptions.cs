namespace Interceptor.Core.Options;

/// <summary>Whether a relay serves from the start or waits, its address unknown to blocklists, until a Primary burns.</summary>
public enum SmarthostRole
{
    Primary,
    Standby,
}

/// <summary>How the daemon protects the connection to a relay.</summary>
public enum SmarthostTls
{
    /// <summary>STARTTLS, certificate verified against <see cref="SmarthostOptions.TlsName"/> or the host name.</summary>
    Required,

    /// <summary>STARTTLS when offered, unverified; plain otherwise (never with credentials: AUTH needs TLS).</summary>
    Opportunistic,

    /// <summary>Plain text: only for a relay on a private network, and never with credentials.</summary>
    None,
}

/// <summary>One relay of the pool: <c>Relay.Smarthosts[i]</c>.</summary>
public sealed record SmarthostOptions
{
    /// <summary>How logs, the trace header (<c>relay=NAME</c>), alerts and the admin verbs name this relay.</summary>
    public string Name { get; init; } = "";

    public string Host { get; init; } = "";

    /// <summary>Submission (587) by default: relays take authenticated mail there.</summary>
    public int Port { get; init; } = 587;

    public SmarthostRole Role { get; init; } = SmarthostRole.Primary;

    public SmarthostTls Tls { get; init; } = SmarthostTls.Required;

    /// <summary>The name the relay's certificate must carry, when it is not <see cref="Host"/>.</summary>
    public string TlsName { get; init; } = "";

    /// <summary>A PEM file of the CA that signed the relay's certificate, instead of the system's trust store.</summary>
    public string CaFile { get; init; } = "";

    /// <summary>The public address the relay sends from: what blocklists see and what the DNSBL checks look up.</summary>
    public string EgressAddress { get; init; } = "";

    /// <summary>The EHLO name for this relay; empty: <see cref="RelayOptions.HeloName"/>.</summary>
    public string HeloName { get; init; } = "";
}

/// <summary>One reply pattern that means "the sending address is blocked", with the label logs and alerts show.</summary>
public sealed record BurnPatternOptions
{
    public string Label { get; init; } = "";

    /// <summary>A .NET regular expression, matched case-insensitively against the whole reply text (lines joined).</summary>
    public string Pattern { get; init; } = "";
}

/// <summary>When a relay (or, in Auto mode, the host itself) counts as burned, and when it may return.</summary>
public sealed record BurnOptions
{
    /// <summary>
    /// Defaults from the providers' published reply texts: Microsoft's S3140/S3150 network block and 5.7.606-5.7.649
    /// banned sending IP, Gmail's unsolicited-rate block, Yahoo's TSS04 deferral, and DNSBL rejections as Postfix
    /// ("blocked using") and others ("listed at") word them.
    /// </summary>
    public static readonly IReadOnlyList<BurnPatternOptions> DefaultPatterns =
    [
        new() { Label = "microsoft-network-block", Pattern = @"\bS31[45]0\b|part of their network is on our block list" },
        new() { Label = "microsoft-banned-ip", Pattern = @"\b5\.7\.6(0[6-9]|[1-3][0-9]|4[0-9])\b" },
        new() { Label = "gmail-unsolicited-rate", Pattern = @"unusual rate of\s+unsolicited mail" },
        new() { Label = "yahoo-tss04", Pattern = @"\bTSS04\b" },
        new() { Label = "dnsbl-rejection", Pattern = @"\bblocked using\b|\blisted at\b" },
    ];

    /// <summary>A configured list replaces the defaults entirely.</summary>
    public IReadOnlyList<BurnPatternOptions> Patterns { get; init; } = DefaultPatterns;

    /// <summary>Replies matching <see cref="Patterns"/> within <see cref="Window"/> that burn a relay.</summary>
    public int Threshold { get; init; } = 5;

    [ConfigurationKey("WindowMinutes")]
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(60);

    /// <summary>
    /// In Auto mode the host's own address is burned by replies only when they came from the mail of at least this many
    /// users (sub-UIDs count as their owner): a customer's site can send to an MX it runs itself, and that MX's invented
    /// "blocked" replies alone must not move every user's mail to the pool. 1: any user's replies count alone. Never
    /// more than <see cref="Threshold"/> (a threshold of 2 needs two users at most).
    /// </summary>
    public int HostMinUsers { get; init; } = 2;

    /// <summary>
    /// ... and only when they came from at least this many destination networks (IPv4 /24, IPv6 /48): a site can also
    /// make other users' mail go to its own domain (a contact form), whose MX it runs. 1: one network may do it.
    /// </summary>
    public int HostMinNetworks { get; init; } = 2;

    /// <summary>
    /// A relay is burned by replies only when they came from the mail of at least this many users (sub-UIDs count as their
    /// owner): one customer chooses what a relay quotes back to her (her relay login, her domain's MX answering the
    /// relay's recipient verification), and her invented block notices alone must not take relays out for everyone.
    /// 1: any user's replies count alone (a pool serving one site). Never more than <see cref="Threshold"/>.
    /// </summary>
    public int RelayMinUsers { get; init; } = 2;

    public IReadOnlyList<string> DnsblZones { get; init; } = ["zen.spamhaus.org"];

    /// <summary>"address" or "address:port" of the resolver for DNSBL queries; empty: the system's resolver.</summary>
    public string DnsServer { get; init; } = "";

    [ConfigurationKey("CheckIntervalMinutes")]
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromMinutes(60);

    /// <summary>The host's own public address, looked up in the DNSBLs in Auto mode; empty: no DNSBL check of the host.</summary>
    public string HostAddress { get; init; } = "";

    /// <summary>A burned relay returns (at the back) only after this many days ...</summary>
    [ConfigurationKey("ReturnAfterDays")]
    public TimeSpan ReturnAfter { get; init; } = TimeSpan.FromDays(21);

    /// <summary>... and this many DNSBL checks in a row that found its address listed nowhere.</summary>
    public int ReturnCleanChecks { get; init; } = 3;
}
