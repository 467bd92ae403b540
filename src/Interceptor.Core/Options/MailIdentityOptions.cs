namespace Interceptor.Core.Options;

/// <summary>Where the map of which Unix user owns which mail domains comes from (issue 17).</summary>
public enum DomainSource
{
    /// <summary>No map: nobody owns a domain (From policy and DKIM then have nothing to go by).</summary>
    None,

    /// <summary>cPanel's <c>/etc/userdomains</c>, lines <c>domain: user</c>.</summary>
    Cpanel,

    /// <summary>DirectAdmin's <c>/etc/virtual/domainowners</c>, lines <c>domain: user</c>.</summary>
    DirectAdmin,

    /// <summary><see cref="DomainsOptions.File"/>, lines <c>user: domain domain …</c>.</summary>
    File,
}

/// <summary>Which user owns which domains; reloaded when the file changes, a malformed line is logged and skipped.</summary>
public sealed record DomainsOptions
{
    public DomainSource Source { get; init; } = DomainSource.None;

    /// <summary>The map for <see cref="DomainSource.File"/> (absolute path); ignored by the other sources.</summary>
    public string File { get; init; } = "";

    /// <summary>A user owning example.com owns shop.example.com too.</summary>
    public bool IncludeSubdomains { get; init; } = true;
}

public enum FromPolicyMode
{
    /// <summary>Not checked.</summary>
    Off,

    /// <summary>Checked and logged, relayed anyway (the default: safe to turn on anywhere).</summary>
    Log,

    /// <summary>A From: domain the user does not own gets 550 5.7.1 and nothing reaches the upstream.</summary>
    Refuse,
}

/// <summary>Whether a user may send as a From: domain it does not own (forged senders, phishing).</summary>
public sealed record FromPolicyOptions
{
    public FromPolicyMode Mode { get; init; } = FromPolicyMode.Log;

    /// <summary>Domains every user may use (the provider's own); their subdomains follow <see cref="DomainsOptions.IncludeSubdomains"/>.</summary>
    public IReadOnlyList<string> AllowedDomains { get; init; } = [];
}

/// <summary>DKIM signing of mail whose From: domain the connecting user owns.</summary>
public sealed record DkimOptions
{
    public bool Enabled { get; init; }

    /// <summary>Keys as <c>&lt;domain&gt;/&lt;selector&gt;.key</c> (PEM); readable by the daemon only, or it refuses to start.</summary>
    public string KeyDirectory { get; init; } = "/etc/smtp-interceptor/dkim";

    public string Selector { get; init; } = "default";

    /// <summary>Which key kinds may sign: <c>rsa-sha256</c>, <c>ed25519-sha256</c> (RFC 8463). The key file's kind picks the algorithm.</summary>
    public IReadOnlyList<string> Algorithms { get; init; } = ["rsa-sha256"];

    /// <summary>Larger messages are relayed unsigned (logged <c>reason=too-large</c>); signing reads the spool twice.</summary>
    [ConfigurationKey("MaxBytes")]
    public ByteSize MaxSize { get; init; } = ByteSize.FromBytes(512L << 20);
}
