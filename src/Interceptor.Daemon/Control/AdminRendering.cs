using System.Globalization;
using System.Text;

namespace Interceptor.Daemon.Control;

/// <summary>
/// The human-readable form of each verb's data. Times are UTC with a Z, as in the daemon's own log lines, so the
/// two can be matched by eye; sizes are binary units; `--json` gives the exact values.
/// </summary>
public static partial class AdminRendering
{
    /// <summary>status lists this many users; `users --limit N` shows the rest.</summary>
    public const int StatusUserRows = 25;

    /// <summary>Upstream replies can be long; the table keeps the start, `--json` the whole text.</summary>
    public const int ReplyWidth = 60;

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static string Status(StatusData s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var text = new StringBuilder();
        text.AppendLine(C, $"smtp-interceptor {s.Version}: running for {Durations.Format(TimeSpan.FromSeconds(s.UptimeSeconds))} (since {Time(s.StartedAt)}), {s.ActiveSessions} active session{Plural(s.ActiveSessions)}, owner lookup via {s.OwnerLookup}");
        var store = s.Store.Healthy switch
        {
            true => "ok",
            false => "FAILING: " + s.Store.LastFailure,
            null => "state unknown",
        };
        var commits = s.Store.Commits is { } n ? string.Create(C, $", {n} commits") + (s.Store.LastCommit is { } last ? $", last {Time(last)}" : "") : "";
        text.AppendLine(C, $"store: {s.Store.Path} ({store}{commits})");
        if (s.Table.Matches)
        {
            text.AppendLine(C, $"table: inet {s.Table.Name} matches the configuration ({s.Suspended.Count} suspended uid{Plural(s.Suspended.Count)} in its set)");
        }
        else
        {
            text.AppendLine(C, $"table: inet {s.Table.Name} DIFFERS from the configuration (restart the daemon to reinstall it; inspect with `nft list table inet {s.Table.Name}`):");
            foreach (var difference in s.Table.Differences)
            {
                text.AppendLine(C, $"  - {difference}");
            }
        }

        foreach (var suspension in s.Suspended)
        {
            text.AppendLine(C, $"suspended: {suspension.User} (uid {suspension.Uid}) since {Time(suspension.Since)} ({Name(suspension.Source)}): {suspension.Reason}");
        }

        foreach (var relay in s.Relays ?? [])
        {
            text.AppendLine(RelayLine(relay));
        }

        text.AppendLine();
        if (s.Users.Count == 0)
        {
            text.AppendLine("no mail and no refusals in the last 24 hours");
            return text.ToString();
        }

        var table = new TextTable("USER", ">UID", ">SENT", ">RCPTS", ">HELD", ">DEFERRED", ">REJECTED", ">REFUSED", ">SENT", ">RCPTS", ">HELD", ">DEFERRED", ">REJECTED", ">REFUSED", "SUSPENDED")
            .Group("last hour", 2, 6)
            .Group("last 24 hours", 8, 6);
        foreach (var u in s.Users.Take(StatusUserRows))
        {
            table.Add([u.User, Number(u.Uid), .. Counts(u.LastHour), .. Counts(u.LastDay), u.Suspended ? "yes" : "no"]);
        }

        text.Append(table.Render());
        if (s.Users.Count > StatusUserRows)
        {
            text.AppendLine(C, $"... and {s.Users.Count - StatusUserRows} more (smtp-interceptor users --limit {s.Users.Count})");
        }

        text.AppendLine("SENT: messages the upstream accepted; RCPTS: their recipients; HELD: held for review and not delivered since, deleted ones included (the quotas count them as sent); REFUSED: policy refusals (quota, size, suspension)");
        return text.ToString();

        static string[] Counts(WindowCounts w) => [Number(w.Delivered), Number(w.Recipients), Number(w.Held), Number(w.Deferred), Number(w.Rejected), Number(w.PolicyRefusals)];
    }

    public static string Users(UsersData u)
    {
        ArgumentNullException.ThrowIfNull(u);
        var text = new StringBuilder();
        text.AppendLine(C, $"top senders since {Time(u.Since)}, at most {u.Limit}:");
        if (u.Users.Count == 0)
        {
            text.AppendLine("nobody sent mail or was refused in that time");
            return text.ToString();
        }

        var table = new TextTable("USER", ">UID", ">SENT", ">RCPTS", ">PENDING", ">HELD", ">DEFERRED", ">REJECTED", ">REFUSED", ">BYTES", "LAST ACTIVITY", "SUSPENDED");
        foreach (var r in u.Users)
        {
            table.Add(
                r.User, Number(r.Uid), Number(r.Delivered), Number(r.Recipients), Number(r.Pending), Number(r.Held), Number(r.Deferred),
                Number(r.Rejected), Number(r.PolicyRefusals), Size(r.BytesDelivered), Time(r.LastActivity), r.Suspended ? "yes" : "no");
        }

        return text.Append(table.Render()).ToString();
    }

    public static string Log(LogData log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var who = log.User is null ? "" : string.Create(C, $" of {log.User} (uid {log.Uid})");
        if (log.Transactions.Count == 0)
        {
            return $"no transactions{who} since {Time(log.Since)}{Environment.NewLine}";
        }

        var table = new TextTable("TIME", "ID", "USER", "FROM", ">RCPTS", ">SIZE", "DESTINATION", "REPLY");
        foreach (var t in log.Transactions)
        {
            var reply = t.Reply.Length == 0 ? $"({Name(t.Outcome)})" : Shorten(t.Reply, ReplyWidth);
            table.Add(Time(t.Time), t.Id, t.User, t.From.Length == 0 ? "<>" : t.From, Number(t.Recipients), Size(t.SizeBytes), t.Destination, reply);
        }

        var text = new StringBuilder();
        text.AppendLine(C, $"{log.Transactions.Count} transaction{Plural(log.Transactions.Count)}{who} since {Time(log.Since)}, newest first{(log.Transactions.Count >= log.Limit ? $" (limit {log.Limit}: --limit N shows more)" : "")}:");
        return text.Append(table.Render()).ToString();
    }

    public static string Block(BlockData b)
    {
        ArgumentNullException.ThrowIfNull(b);
        return b.Message + Environment.NewLine;
    }

    public static string Limits(LimitsData l)
    {
        ArgumentNullException.ThrowIfNull(l);
        var text = new StringBuilder();
        if (l.User is { } user)
        {
            var uid = user.Uid is { } id ? string.Create(C, $" (uid {id})") : " (no such account yet)";
            text.AppendLine(C, $"{user.User}{uid}: {(user.Source == "Limits.Default" ? "Limits.Default" : user.Source + " over Limits.Default")}; {(user.Suspended ? "SUSPENDED" : "not suspended")}");
            var usage = user.Usage;
            var table = new TextTable("LIMIT", ">VALUE", ">USED");
            string Value(string field, long value) => Number(value) + (user.Overridden.Contains(field) ? "*" : "");
            string Used(int? value) => value is { } v ? Number(v) : "-";
            table.Add("messages per hour", Value("messagesPerHour", user.Limits.MessagesPerHour), Used(usage?.MessagesLastHour));
            table.Add("messages per day", Value("messagesPerDay", user.Limits.MessagesPerDay), Used(usage?.MessagesLastDay));
            table.Add("recipients per hour", Value("recipientsPerHour", user.Limits.RecipientsPerHour), Used(usage?.RecipientsLastHour));
            table.Add("recipients per day", Value("recipientsPerDay", user.Limits.RecipientsPerDay), Used(usage?.RecipientsLastDay));
            table.Add("recipients per message", Value("recipientsPerMessage", user.Limits.RecipientsPerMessage), "-");
            table.Add("connections", Value("connections", user.Limits.Connections), Used(usage?.Connections));
            table.Add("message size (bytes)", Value("messageSizeBytes", user.Limits.MessageSizeBytes), "-");
            text.Append(table.Render());
            text.AppendLine("USED: delivered in the sliding hour and day; connections open now");
        }
        else
        {
            var table = new TextTable("LIMITS", ">MSG/HOUR", ">MSG/DAY", ">RCPT/HOUR", ">RCPT/DAY", ">RCPT/MSG", ">CONNECTIONS", ">SIZE (BYTES)");
            table.Add(["Limits.Default", .. Row(l.Default, [])]);
            foreach (var o in l.Overrides)
            {
                table.Add([o.User, .. Row(o.Limits, o.Overridden)]);
            }

            text.Append(table.Render());
        }

        if (l.User is not null || l.Overrides.Count > 0)
        {
            text.AppendLine("* set by the user's own Limits.Users entry; the other values come from Limits.Default");
        }

        return text.ToString();

        static string[] Row(LimitValues v, IReadOnlyList<string> own)
        {
            string Cell(string field, long value) => Number(value) + (own.Contains(field) ? "*" : "");
            return
            [
                Cell("messagesPerHour", v.MessagesPerHour), Cell("messagesPerDay", v.MessagesPerDay),
                Cell("recipientsPerHour", v.RecipientsPerHour), Cell("recipientsPerDay", v.RecipientsPerDay),
                Cell("recipientsPerMessage", v.RecipientsPerMessage), Cell("connections", v.Connections),
                Cell("messageSizeBytes", v.MessageSizeBytes),
            ];
        }
    }

    /// <summary>"2030-05-01 12:00:03Z".</summary>
    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", C);

    /// <summary>"512B", "4.0K", "2.3M", "1.1G" (binary units), short enough for a column.</summary>
    public static string Size(long bytes) => bytes switch
    {
        < 1024 => string.Create(C, $"{bytes}B"),
        < 1024 * 1024 => string.Create(C, $"{bytes / 1024.0:0.0}K"),
        < 1024L * 1024 * 1024 => string.Create(C, $"{bytes / (1024.0 * 1024):0.0}M"),
        _ => string.Create(C, $"{bytes / (1024.0 * 1024 * 1024):0.0}G"),
    };

    /// <summary>Cuts a long text to <paramref name="width"/> characters, marking the cut.</summary>
    public static string Shorten(string text, int width) =>
        text.Length <= width ? text : string.Concat(text.AsSpan(0, width - 3), "...");

    private static string Number(long value) => value.ToString(C);

    private static string Plural(long count) => count == 1 ? "" : "s";

    /// <summary>An enum as the JSON spells it (camelCase), so both outputs use one vocabulary.</summary>
    private static string Name<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        var name = value.ToString();
        return string.Concat(name[..1].ToLowerInvariant(), name.AsSpan(1));
    }
}
