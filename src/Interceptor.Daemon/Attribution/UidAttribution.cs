using System.Collections.Concurrent;
using System.Net;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;
using Interceptor.Linux;
using Interceptor.Smtp.Session;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Turns the uid that owns a socket into the user the connection is charged to. A subordinate uid (/etc/subuid)
/// is its owner's: a customer with a range becomes any uid of it through the setuid newuidmap, and each must not
/// be a fresh user with its own quota and no suspension. The connection carries the owner as uid and user (all
/// policy keys on those) and the real uid as <see cref="ConnectionOrigin.SubordinateUid"/>. A uid that has
/// neither an account nor an owner is refused unless <see cref="AttributionOptions.UnknownUids"/> says Relay.
/// </summary>
public sealed class UidAttribution(SubordinateUidFile subordinates, UnknownUidHandling unknownUids, ILogger logger, AttributionMetrics? metrics = null)
{
    // One warning per unknown uid per interval, with the count of the refusals it stands for: a loop of
    // connections from one uid must not flood the journal.
    private static readonly long LogIntervalMs = (long)TimeSpan.FromMinutes(1).TotalMilliseconds;
    private const int MaxTrackedUids = 10_000;
    private readonly ConcurrentDictionary<uint, RefusalLog> _logged = new();

    /// <summary>The origin to relay under, or the reply that refuses the connection.</summary>
    /// <exception cref="LinuxInteropException">The user database could not be read.</exception>
    public (ConnectionOrigin? Origin, SmtpReply? Refusal) Resolve(uint uid, IPEndPoint client, IPEndPoint destination)
    {
        // The owner first, even if the uid also has an account: whoever owns the range can become this uid, so
        // letting the account win would hand the owner that account's quota (a misconfigured host; the header
        // names both numbers).
        if (subordinates.Current.FindOwner(uid) is { } owner)
        {
            return (new ConnectionOrigin(owner.Uid, owner.Name, client, destination) { SubordinateUid = uid }, null);
        }

        return Named(uid, UserDatabase.NameOf(uid), client, destination);
    }

    /// <summary>
    /// Whom a refusal of <paramref name="uid"/> is logged against: the owner of its range when it is a sub-UID (so that a
    /// thousand sub-UIDs cannot fill the refusal log's keys and leave everyone else's refusals unnamed), with a note
    /// naming the sub-UID; else the uid itself. Reads /etc/subuid when due: not for a socket thread.
    /// </summary>
    public (uint? Uid, string? Note) ChargedForLog(uint? uid) => ChargedForLog(subordinates, uid);

    /// <summary><see cref="ChargedForLog(uint?)"/> against <paramref name="subordinates"/>.</summary>
    public static (uint? Uid, string? Note) ChargedForLog(SubordinateUidFile subordinates, uint? uid) =>
        uid is { } sent && subordinates.Current.FindOwner(sent) is { } owner ? (owner.Uid, $"sent as sub-UID {sent}") : (uid, null);

    /// <summary>
    /// <see cref="Resolve"/> from what is cached only: false when the answer needs NSS (a name not cached) or a look at
    /// /etc/subuid (due once a second; a reload resolves every owner), either of which may block a socket thread.
    /// </summary>
    public bool TryResolveCached(uint uid, IPEndPoint client, IPEndPoint destination, out (ConnectionOrigin? Origin, SmtpReply? Refusal) resolved)
    {
        resolved = default;
        if (!subordinates.TryCurrentWithoutChecking(out var map))
        {
            return false;
        }

        if (map.FindOwner(uid) is { } owner)
        {
            resolved = (new ConnectionOrigin(owner.Uid, owner.Name, client, destination) { SubordinateUid = uid }, null);
            return true;
        }

        if (!UserDatabase.TryCachedName(uid, out var name))
        {
            return false;
        }

        resolved = Named(uid, name, client, destination);
        return true;
    }

    private (ConnectionOrigin? Origin, SmtpReply? Refusal) Named(uint uid, string? name, IPEndPoint client, IPEndPoint destination)
    {
        if (name is not null)
        {
            return (new ConnectionOrigin(uid, name, client, destination), null);
        }

        if (unknownUids == UnknownUidHandling.Relay)
        {
            return (new ConnectionOrigin(uid, $"#{uid}", client, destination), null);
        }

        LogRefusal(uid, client, destination);
        metrics?.ConnectionRefused("unknown_uid");
        return (null, new SmtpReply(421, "4.7.1",
            $"uid {uid} has no account on this host and is not a subordinate uid of one; mail of unknown origin is not relayed"));
    }

    private void LogRefusal(uint uid, IPEndPoint client, IPEndPoint destination)
    {
        var now = Environment.TickCount64;
        var entry = _logged.AddOrUpdate(uid, _ => new RefusalLog(now, 0, true), (_, old) =>
            now - old.LoggedAt >= LogIntervalMs ? new RefusalLog(now, old.Suppressed, true) : old with { Suppressed = old.Suppressed + 1, Due = false });
        if (!entry.Due)
        {
            return;
        }

        if (_logged.Count > MaxTrackedUids)
        {
            // A flood of distinct uids (only root can make those) costs log lines, never unbounded memory.
            _logged.Clear();
        }

        logger.UnknownUidRefused(uid, client, destination, entry.Suppressed);
        _logged[uid] = entry with { Suppressed = 0 };
    }

    private readonly record struct RefusalLog(long LoggedAt, long Suppressed, bool Due);
}
