using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Smtp.Pool;

/// <summary>
/// The smarthost pool as an <see cref="IUpstreamSource"/> (issue 15): for each session, the relay
/// <see cref="RelayPool.Choose"/> names, opened with the relay's TLS policy and authenticated with the connecting user's
/// login (<see cref="RelayCredentials.For"/>). A relay that refuses the connection, times out, greets with 4xx/5xx,
/// fails STARTTLS or refuses AUTH with anything but 535 is reported down and the next one is tried, all before the client
/// is answered; a 535 is the site's problem (the client gets a 4xx naming the user, the relay stays up); with no
/// usable relay the client gets 451 4.4.1, never a direct send. Idle sessions are kept in the shared
/// <see cref="UpstreamConnectionCache"/> under the relay and the login (<see cref="RelayTarget.ReuseKeyFor"/>).
/// </summary>
public sealed class PoolUpstreamSource : IUpstreamSource
{
    private readonly RelayPool _pool;
    private readonly IRelayPoolObserver _observer;
    private readonly RelayCredentials _credentials;
    private readonly UpstreamConnectionCache _cache;
    private readonly IUpstreamConnector _connector;
    private readonly Dictionary<string, RelayTarget> _targets;

    /// <param name="cache">Where idle relay sessions wait (shared with direct ones: one bound on idle descriptors); its
    /// settings give the timeouts and the default EHLO name.</param>
    /// <exception cref="InvalidOperationException">A relay's CaFile cannot be read.</exception>
    public PoolUpstreamSource(
        IReadOnlyList<SmarthostOptions> relays, RelayPool pool, IRelayPoolObserver observer, RelayCredentials credentials,
        UpstreamConnectionCache cache, IUpstreamConnector? connector = null)
    {
        ArgumentNullException.ThrowIfNull(relays);
        ArgumentNullException.ThrowIfNull(cache);
        _pool = pool;
        _observer = observer;
        _credentials = credentials;
        _cache = cache;
        _connector = connector ?? cache.Connector;
        _targets = relays.ToDictionary(r => r.Name, r => new RelayTarget(r, cache.Settings), StringComparer.OrdinalIgnoreCase);
    }

    public UpstreamLease Lease(ConnectionOrigin origin)
    {
        ArgumentNullException.ThrowIfNull(origin);
        return new UpstreamLease(new PoolRoute(this, origin.User, PoolReplyWatcher.ForRelays(_pool, _observer, origin.Uid)));
    }

    /// <summary>The client's reply when a relay refused the user's login (535): a 4xx, so the site's mail waits.</summary>
    public static SmtpReply LoginRefusedReply(string relay, string user) =>
        new(454, "4.7.0", $"relay {relay} refused the login of user {user}; the admin has been alerted");

    /// <summary>
    /// A session on the first usable relay for <paramref name="user"/>: each relay the pool names is tried in turn until
    /// one is ready for MAIL, or the answer is the client's 4xx. The session tells its replies to
    /// <paramref name="watcher"/>, this user's, while she holds it (a session kept for reuse under a shared login serves
    /// other users after her: <c>Burn.RelayMinUsers</c> counts whose mail drew a reply).
    /// </summary>
    private async Task<UpstreamHandOut> TakeAsync(string user, PoolReplyWatcher watcher, bool fresh, CancellationToken cancellationToken)
    {
        var login = _credentials.For(user);
        var tried = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var failures = new List<string>();
        while (_pool.Choose(tried) is { } name)
        {
            tried.Add(name);
            var target = _targets[name];
            var step = UpstreamOpeningStep.Greeting;
            UpstreamHandOut handOut;
            try
            {
                handOut = await _cache.TakeAsync(target.ReuseKeyFor(login), async token =>
                {
                    var opening = await target.OpenAsync(login, _connector, token);
                    step = opening.Step;
                    return opening;
                }, fresh, cancellationToken);
            }
            catch (UpstreamException e) when (e is not UpstreamDescriptorsExhaustedException)
            {
                // Our own lack of descriptors is no fault of the relay's: that one goes to the client as it is.
                failures.Add(Fail(name, e.Message));
                continue;
            }

            if (handOut.Refusal is { } refusal)
            {
                if (step == UpstreamOpeningStep.Auth && refusal.Code == 535)
                {
                    _observer.LoginRefused(name, user, refusal.ToString());
                    return new UpstreamHandOut(null, LoginRefusedReply(name, user), Reused: false);
                }

                failures.Add(Fail(name, $"refused at {step}: {refusal}"));
                continue;
            }

            var connection = handOut.Connection!;
            connection.Watcher = watcher;
            if (!handOut.Reused)
            {
                connection.Relay = name;
                _observer.Publish(_pool.ReportSuccess(name));
            }

            return handOut;
        }

        var why = failures.Count > 0 ? string.Join("; ", failures) : "every relay is down or burned";
        return new UpstreamHandOut(null, new SmtpReply(451, "4.4.1", $"no relay available: {why}"), Reused: false);
    }

    private string Fail(string relay, string reason)
    {
        _observer.Publish(_pool.ReportFailure(relay, reason));
        _observer.Failed(relay, reason);
        return $"{relay}: {reason}";
    }

    /// <summary>One lease's route: named after the relay it last got a session from.</summary>
    private sealed class PoolRoute(PoolUpstreamSource source, string user, PoolReplyWatcher watcher) : IUpstreamRoute
    {
        private string? _relay;

        public string Name => _relay ?? "relay pool";

        public async Task<UpstreamHandOut> TakeAsync(bool fresh, CancellationToken cancellationToken)
        {
            var handOut = await source.TakeAsync(user, watcher, fresh, cancellationToken);
            _relay = handOut.Connection?.Relay ?? _relay;
            return handOut;
        }

        public Task GiveBackAsync(UpstreamConnection connection)
        {
            connection.Watcher = null;
            return source._cache.ReleaseAsync(connection);
        }
    }
}
