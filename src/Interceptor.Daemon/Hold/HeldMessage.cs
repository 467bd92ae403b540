using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Interceptor.Daemon.Hold;

/// <summary>Where a held message is in its life: kept, released (being delivered, with retries), failed, or delivered.</summary>
public enum HoldState
{
    Held,
    Released,
    Failed,
    Delivered,
}

/// <summary>
/// The JSON record kept next to a held message (<c>ID.json</c> beside <c>ID.eml</c>): who sent it, to whom, where it was
/// going, which stage held it and why, and what happened since. The id is the transaction's (the trace header's and the
/// log line's), so an admin finds the message from either.
/// </summary>
public sealed record HeldMessage(
    string Id,
    uint Uid,
    string User,
    string Sender,
    IReadOnlyList<string> Recipients,
    string OriginalDestination,
    string Route,
    string Stage,
    string Reason,
    double? Score,
    IReadOnlyList<string> Symbols,
    DateTimeOffset HeldAt,
    long SizeBytes,
    HoldState State)
{
    public DateTimeOffset? ReleasedAt { get; init; }

    /// <summary>Delivery attempts since the release.</summary>
    public int Attempts { get; init; }

    public DateTimeOffset? NextAttempt { get; init; }

    /// <summary>The last upstream reply or failure of a delivery attempt.</summary>
    public string? LastResult { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>Hold ids: the transaction id, 32 lower-case hex digits (a version 7 GUID: ordered by time).</summary>
public static partial class HoldId
{
    /// <summary>True for a well-formed id; anything else (a path, "..") never reaches the file system.</summary>
    public static bool IsValid(string? id) => id is not null && Pattern().IsMatch(id);

    [GeneratedRegex("^[0-9a-f]{32}$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}

/// <summary>The records' JSON: camelCase, states as names, indented (an admin may read the file).</summary>
internal static class HoldJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            WriteIndented = true,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
