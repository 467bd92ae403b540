using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Store;

namespace Interceptor.Daemon.Control;

// The "data" of each verb's response. Property names become the camelCase JSON fields that `--json` prints and panels
// read: renaming one breaks them, so add fields rather than rename. Times are UTC.

/// <summary>`status`: the daemon's health, whether its nft table is intact, and who sent what lately.</summary>
public sealed record StatusData(
    string Version,
    DateTimeOffset StartedAt,
    long UptimeSeconds,
    int ActiveSessions,
    string OwnerLookup,
    StoreStatus Store,
    TableStatus Table,
    IReadOnlyList<UserStatus> Users,
    IReadOnlyList<SuspensionInfo> Suspended)
{
    /// <summary>One line per relay of the pool (issue 15); left out of the JSON when no pool is configured.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<RelayRow>? Relays { get; init; }
}

/// <param name="Healthy">False once a write failed (mail is refused with 451 meanwhile); null when not known.</param>
public sealed record StoreStatus(string Path, bool? Healthy, long? Commits, DateTimeOffset? LastCommit, string? LastFailure);

/// <param name="Matches">The installed table is exactly the configured one, suspended uids included.</param>
/// <param name="Differences">One sentence per difference (or why the table could not be read).</param>
public sealed record TableStatus(string Name, bool Matches, IReadOnlyList<string> Differences);

/// <summary>One user's transactions and refusals over a window, by outcome.</summary>
/// <param name="Delivered">Messages the upstream accepted.</param>
/// <param name="Recipients">Recipients of those messages.</param>
/// <param name="Pending">Relayed but without a recorded outcome yet (counted as sent by the quotas).</param>
/// <param name="Refused">Transactions refused by us before relaying, or abandoned by the client.</param>
/// <param name="PolicyRefusals">Quota, size and suspension refusals, and MAILs held back after failures of ours (Suspension.LocalFailureLimit).</param>
public sealed record WindowCounts(long Delivered, long Recipients, long Pending, long Deferred, long Rejected, long Refused, long PolicyRefusals)
{
    public static readonly WindowCounts Zero = new(0, 0, 0, 0, 0, 0, 0);

    /// <summary>Held for review and not delivered since (deleted ones included): counted as sent by the quotas.</summary>
    public long Held { get; init; }

    public static WindowCounts Of(UserActivity? a) => a is null
        ? Zero
        : new(a.Delivered, a.DeliveredRecipients, a.Pending, a.Deferred, a.Rejected, a.Refused, a.PolicyRefusals) { Held = a.Held };
}

public sealed record UserStatus(uint Uid, string User, WindowCounts LastHour, WindowCounts LastDay, bool Suspended);

public sealed record SuspensionInfo(uint Uid, string User, string Reason, DateTimeOffset Since, SuspensionSource Source)
{
    public static SuspensionInfo Of(Suspension s) => new(s.Uid, s.User, s.Reason, s.Since.ToUniversalTime(), s.Source);
}

/// <summary>`users`: top senders since a point in time.</summary>
public sealed record UsersData(DateTimeOffset Since, int Limit, IReadOnlyList<UserActivityRow> Users);

public sealed record UserActivityRow(
    uint Uid,
    string User,
    long Delivered,
    long Recipients,
    long Pending,
    long Deferred,
    long Rejected,
    long Refused,
    long PolicyRefusals,
    long BytesDelivered,
    DateTimeOffset LastActivity,
    bool Suspended)
{
    /// <summary>Held for review and not delivered since (deleted ones included): counted as sent by the quotas.</summary>
    public long Held { get; init; }
}

/// <summary>`log`: recent transactions, newest first.</summary>
/// <param name="User">The user asked for, as resolved (null: everyone).</param>
public sealed record LogData(DateTimeOffset Since, string? User, uint? Uid, int Limit, IReadOnlyList<LogEntry> Transactions);

/// <param name="Destination">Where the client was connecting (the original destination).</param>
/// <param name="Upstream">Where the daemon relayed to (the same, unless a smarthost took it).</param>
/// <param name="Process">"pid=… exe=… cwd=…" behind the socket, when it was found.</param>
public sealed record LogEntry(
    DateTimeOffset Time,
    string Id,
    uint Uid,
    string User,
    string From,
    int Recipients,
    long SizeBytes,
    string Destination,
    string Upstream,
    TransactionOutcome Outcome,
    string Reply,
    long DurationMs,
    string? Process)
{
    public static LogEntry Of(TransactionEvent t) => new(
        t.Started.ToUniversalTime(), t.Id, t.Uid, t.User, t.Sender, t.RecipientCount, t.SizeBytes, t.OriginalDestination,
        t.Upstream, t.Outcome, t.Reply, (long)t.Duration.TotalMilliseconds, t.Process);

    /// <summary>
    /// A tally (transactions that ended before DATA, or connection-cap refusals, of one user in one minute) as one line
    /// of the log: its id says how many, its reply what they were.
    /// </summary>
    public static LogEntry Of(TallyEntry t) => new(
        t.Last.ToUniversalTime(), $"tally×{t.Count}", t.Uid, t.User, "", 0, 0, "", "",
        Enum.TryParse<TransactionOutcome>(t.Outcome, out var outcome) ? outcome : TransactionOutcome.Refused,
        t.Describe(), (long)(t.Last - t.First).TotalMilliseconds, null);
}

/// <summary>`block` and `unblock`: what changed.</summary>
/// <param name="Changed">False when the user already was (block) or was not (unblock) suspended.</param>
/// <param name="Suspended">Whether the user is suspended now.</param>
/// <param name="Message">The sentence the CLI prints, e.g. "alice (uid 1001) suspended: spam wave".</param>
/// <param name="Suspension">The suspension in force now, if any.</param>
public sealed record BlockData(uint Uid, string User, bool Changed, bool Suspended, string Message, SuspensionInfo? Suspension);

/// <summary>Every quota field, resolved (no "as the default" left).</summary>
public sealed record LimitValues(
    int MessagesPerHour,
    int MessagesPerDay,
    int RecipientsPerHour,
    int RecipientsPerDay,
    int RecipientsPerMessage,
    int Connections,
    long MessageSizeBytes)
{
    public static LimitValues Of(QuotaLimits l) => new(
        l.MessagesPerHour ?? 0, l.MessagesPerDay ?? 0, l.RecipientsPerHour ?? 0, l.RecipientsPerDay ?? 0,
        l.RecipientsPerMessage ?? 0, l.Connections ?? 0, l.MessageSizeBytes ?? 0);

    /// <summary>The camelCase names of the fields <paramref name="own"/> sets itself (a Limits.Users entry).</summary>
    public static IReadOnlyList<string> SetIn(QuotaLimits own)
    {
        var names = new List<string>();
        void Add(bool set, string name)
        {
            if (set)
            {
                names.Add(name);
            }
        }

        Add(own.MessagesPerHour is not null, "messagesPerHour");
        Add(own.MessagesPerDay is not null, "messagesPerDay");
        Add(own.RecipientsPerHour is not null, "recipientsPerHour");
        Add(own.RecipientsPerDay is not null, "recipientsPerDay");
        Add(own.RecipientsPerMessage is not null, "recipientsPerMessage");
        Add(own.Connections is not null, "connections");
        Add(own.MessageSizeBytes is not null, "messageSizeBytes");
        return names;
    }
}

/// <summary>A user's current usage of the sliding windows (delivered only; in-flight reservations excluded).</summary>
public sealed record UsageValues(int MessagesLastHour, int MessagesLastDay, int RecipientsLastHour, int RecipientsLastDay, int Connections);

/// <summary>One configured override: its effective limits and which fields it sets itself.</summary>
public sealed record ConfiguredLimits(string User, LimitValues Limits, IReadOnlyList<string> Overridden);

/// <summary>One user's effective limits and usage.</summary>
/// <param name="Uid">Null when the name is configured but not in the user database.</param>
/// <param name="Source">"Limits.Users.NAME" when an override applies, else "Limits.Default".</param>
/// <param name="Usage">Null when the uid is unknown.</param>
public sealed record UserLimits(string User, uint? Uid, string Source, LimitValues Limits, IReadOnlyList<string> Overridden, UsageValues? Usage, bool Suspended);

/// <summary>`limits [USER]`: the default, every override, and the user asked for (null without USER).</summary>
public sealed record LimitsData(LimitValues Default, IReadOnlyList<ConfiguredLimits> Overrides, UserLimits? User);
