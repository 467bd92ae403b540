using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Pool;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>
/// The relay pool's admin verbs inside the running daemon: `relays`, `relay burn|restore NAME`, `host burn|restore`, and
/// the relay lines of `status`. Changes go through the same <see cref="RelayPool"/> the relay path uses and are published
/// to its observer (stored, logged, alerted) like any other change; the answer waits briefly until the store has them.
/// </summary>
public sealed class RelayAdmin(DaemonPool? pool, ILogger logger)
{
    /// <summary>How long a change waits for the store before it answers "in effect, not stored yet".</summary>
    public static readonly TimeSpan StoreWait = TimeSpan.FromSeconds(5);

    /// <summary>The relay lines of `status`; null without a pool (the field is then left out of --json).</summary>
    public IReadOnlyList<RelayRow>? StatusRows()
    {
        if (pool is null)
        {
            return null;
        }

        var relays = Relays();
        return relays.Host is { } host ? [.. relays.Relays, host] : relays.Relays;
    }

    public RelaysData Relays()
    {
        var p = Require();
        var now = p.Time.GetUtcNow();
        var rows = p.Pool.Snapshot().Select(s => Row(p, s, now)).ToList();
        var host = rows.FirstOrDefault(r => r.Role == "host");
        return new RelaysData(ModeText(p.Options.Relay), [.. rows.Where(r => r.Role != "host")], p.UsesAuto ? host : null);
    }

    public async Task<RelayChangeData> ChangeAsync(ControlRequest request, PeerCredentials peer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var p = Require();
        string name;
        if (request.Verb == ControlVerbs.Host)
        {
            if (!p.UsesAuto)
            {
                throw new ControlException(ControlErrors.BadRequest, "host burn|restore acts on Auto mode (Relay.Mode or Relay.ModeByUser Auto), and no user's mode is Auto here");
            }

            name = RelayPool.HostKey;
        }
        else
        {
            name = p.Options.Relay.Smarthosts.FirstOrDefault(r => string.Equals(r.Name, request.Relay, StringComparison.OrdinalIgnoreCase))?.Name
                ?? throw new ControlException(ControlErrors.BadRequest,
                    $"no relay named \"{request.Relay}\" in Relay.Smarthosts (known: {string.Join(", ", p.Options.Relay.Smarthosts.Select(r => r.Name))})");
        }

        var shown = name == RelayPool.HostKey ? "the host" : $"relay {name}";
        var burn = request.Action == ControlActions.Burn;
        var update = burn ? p.Pool.Burn(name, $"by an admin: {request.Reason!.Trim()}") : p.Pool.Restore(name, "by an admin");
        p.Observer.Publish(update);
        if (burn)
        {
            logger.AdminBurned(peer.Uid, name, request.Reason!.Trim());
        }
        else
        {
            logger.AdminRestored(peer.Uid, name);
        }

        var stored = true;
        using (var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            bound.CancelAfter(StoreWait);
            try
            {
                await p.Observer.FlushAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                stored = false;
            }
        }

        var state = p.Pool.Snapshot().First(s => s.Name == name);
        var changed = update.Changed.Count > 0;
        var message = (burn, changed) switch
        {
            (true, true) => $"{shown} burned: {state.Reason}" + Promotion(update),
            (true, false) => $"{shown} was burned already since {Time(state.BurnedSince ?? state.Since)}: {state.Reason}",
            (false, true) => $"{shown} restored: {(state.Status == RelayStatus.InRotation ? "back in rotation" : "in reserve")}",
            (false, false) => $"{shown} was not burned or down; nothing changed",
        };
        if (!stored)
        {
            message += "; NOT STORED YET (the state store is failing): a restart now would lose this change";
        }

        return new RelayChangeData(name == RelayPool.HostKey ? "host" : name, request.Action!, changed, stored, message, Row(p, state, p.Time.GetUtcNow()));
    }

    private static string Promotion(PoolUpdate update) =>
        update.Events.FirstOrDefault(e => e.Kind == PoolEventKind.Promoted) is { } promoted ? $"; {promoted.Relay} promoted from the reserve"
        : update.Events.Any(e => e.Kind == PoolEventKind.ReserveEmpty) ? "; no relay left in reserve to take its place" : "";

    private DaemonPool Require() =>
        pool ?? throw new ControlException(ControlErrors.BadRequest, "no relay pool is configured (Relay.Smarthosts is empty)");

    private static RelayRow Row(DaemonPool p, RelayState s, DateTimeOffset now)
    {
        var configured = p.Options.Relay.Smarthosts.FirstOrDefault(r => string.Equals(r.Name, s.Name, StringComparison.OrdinalIgnoreCase));
        var host = s.Name == RelayPool.HostKey;
        return new RelayRow(
            host ? "host" : s.Name,
            host ? "host" : configured?.Role == SmarthostRole.Standby ? "standby" : "primary",
            host ? p.Options.Burn.HostAddress : configured is null ? "" : $"{configured.Host}:{configured.Port.ToString(CultureInfo.InvariantCulture)} (egress {configured.EgressAddress})",
            PoolMetrics.StateOf(s, now),
            s.Since.ToUniversalTime(),
            s.Reason,
            host ? 0 : p.Observer.Hour.LastHour(s.Name),
            s.LastDnsbl,
            s.LastDnsblAt?.ToUniversalTime(),
            s.DownUntil is { } until && until > now ? until.ToUniversalTime() : null,
            s.Used,
            s.Evidence);
    }

    private static string ModeText(RelayOptions relay) =>
        relay.ModeByUser.Count == 0 ? relay.Mode.ToString()
        : relay.Mode + " (" + string.Join(", ", relay.ModeByUser.OrderBy(u => u.Key, StringComparer.Ordinal).Select(u => $"{u.Key}: {u.Value}")) + ")";

    private static string Time(DateTimeOffset time) => time.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
