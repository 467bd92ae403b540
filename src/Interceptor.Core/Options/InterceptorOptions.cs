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
    public SessionOptions Smtp { get; init; } = new();
}

/// <summary>Where the daemon accepts redirected connections. Always loopback (127.0.0.1 and ::1): no open relay.</summary>
public sealed record ListenOptions
{
    public int Port { get; init; } = 10025;
}

/// <summary>What the nftables table intercepts and whom it leaves alone.</summary>
public sealed record InterceptionOptions
{
    public IReadOnlyList<int> Ports { get; init; } = [25];

    /// <summary>Users whose connections are never redirected. The daemon's own user is always added.</summary>
    public IReadOnlyList<string> ExemptUsers { get; init; } = ["root"];

    public string Table { get; init; } = "smtp_interceptor";
}

public enum RelayMode
{
    OriginalDestination,
}

/// <summary>How the daemon talks to the upstream server.</summary>
public sealed record RelayOptions
{
    public RelayMode Mode { get; init; } = RelayMode.OriginalDestination;

    /// <summary>The name we give in EHLO upstream and in our greeting.</summary>
    public string HeloName { get; init; } = DefaultHeloName();

    public int ConnectTimeoutSeconds { get; init; } = 30;

    /// <summary>How long we wait for any upstream reply except the one after the final dot.</summary>
    public int ReplyTimeoutSeconds { get; init; } = 120;

    /// <summary>How long we wait for the upstream's reply to the final dot (RFC 5321 suggests 10 minutes).</summary>
    public int DataReplyTimeoutSeconds { get; init; } = 600;

    /// <summary>
    /// Destinations on this host (loopback or one of its own addresses) that may still be relayed to,
    /// as "host:port" or "[v6]:port". Anything else local is refused: relaying to ourselves is a loop or a bypass.
    /// </summary>
    public IReadOnlyList<string> PermittedLocalDestinations { get; init; } = ["127.0.0.1:25", "[::1]:25"];

    private static string DefaultHeloName()
    {
        try
        {
            return System.Net.Dns.GetHostEntry(System.Net.Dns.GetHostName()).HostName;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return System.Net.Dns.GetHostName();
        }
    }
}

/// <summary>Per-user limits: <c>Limits.Default</c>, overridden field by field in <c>Limits.Users.NAME</c>.</summary>
public sealed record LimitsOptions
{
    public QuotaLimits Default { get; init; } = QuotaLimits.Defaults;
    public IReadOnlyDictionary<string, QuotaLimits> Users { get; init; } = new Dictionary<string, QuotaLimits>();

    /// <summary>The limits that apply to a user: their override where set, the default otherwise.</summary>
    public QuotaLimits For(string? user)
    {
        if (user is null || !Users.TryGetValue(user, out var own))
        {
            return Default;
        }

        return new QuotaLimits
        {
            MessageSizeBytes = own.MessageSizeBytes ?? Default.MessageSizeBytes,
            RecipientsPerMessage = own.RecipientsPerMessage ?? Default.RecipientsPerMessage,
        };
    }
}

/// <summary>One set of limits; null in a user override means "as the default".</summary>
public sealed record QuotaLimits
{
    public static readonly QuotaLimits Defaults = new() { MessageSizeBytes = 25L * 1024 * 1024, RecipientsPerMessage = 100 };

    public long? MessageSizeBytes { get; init; }
    public int? RecipientsPerMessage { get; init; }
}

/// <summary>Bounds of one inbound SMTP session; they protect the daemon from slow or hostile clients.</summary>
public sealed record SessionOptions
{
    /// <summary>Longest wait for the next command or the next DATA bytes (RFC 5321 4.5.3.2: at least 5 minutes).</summary>
    public int IdleTimeoutSeconds { get; init; } = 300;

    /// <summary>Longest a whole connection may last, however busy.</summary>
    public int SessionTimeoutSeconds { get; init; } = 3600;

    /// <summary>Longest command line, CRLF included (RFC 5321 says 512; extensions need more).</summary>
    public int MaxCommandLineBytes { get; init; } = 2048;

    /// <summary>Longest line inside DATA, CRLF included. Lines are streamed, so this bounds no memory; it stops line-splitting tricks.</summary>
    public int MaxDataLineBytes { get; init; } = 65536;
}
