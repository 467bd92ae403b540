using System.Net;
using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Configuration;
using Interceptor.Linux;
using Interceptor.Smtp.Pool;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Pool;

/// <summary>
/// The relay pool as the running daemon holds it (issue 15): the <see cref="RelayPool"/> built from Relay.Smarthosts and
/// the stored states, the sites' relay logins, the observer the relay path reports to, and the DNSBL service. `run`
/// creates it when Relay.Smarthosts is not empty and hands <see cref="Pool"/>, <see cref="Observer"/> and
/// <see cref="Credentials"/> to the listener; the admin verbs read and change it here.
/// </summary>
public sealed class DaemonPool
{
    private DaemonPool(InterceptorOptions options, RelayPool pool, RelayCredentials credentials, PoolObserver observer, DnsblService dnsbl, TimeProvider time)
    {
        Options = options;
        Pool = pool;
        Credentials = credentials;
        Observer = observer;
        Dnsbl = dnsbl;
        Time = time;
    }

    public InterceptorOptions Options { get; }

    public RelayPool Pool { get; }

    public RelayCredentials Credentials { get; }

    public PoolObserver Observer { get; }

    public DnsblService Dnsbl { get; }

    public TimeProvider Time { get; }

    /// <summary>Whether any user's mode is Auto: only then is the host's own state shown, checked and changeable.</summary>
    public bool UsesAuto => UsesMode(Options.Relay, RelayMode.Auto);

    /// <summary>
    /// Reads Relay.CredentialsFile (none when unset) as a <see cref="PrivateFile"/>. A file that is not a regular file of
    /// the daemon's user's, one group or others may read, a bad line or a missing file is a configuration error (exit 1)
    /// naming the file and the problem; never a line's contents.
    /// </summary>
    public static RelayCredentials LoadCredentials(RelayOptions relay) => LoadCredentials(relay, UserDatabase.EffectiveUid);

    /// <inheritdoc cref="LoadCredentials(RelayOptions)"/>
    /// <param name="relay">The options naming the file.</param>
    /// <param name="daemonUid">The user the daemon runs as, who must own the file (check-config --daemon-user).</param>
    public static RelayCredentials LoadCredentials(RelayOptions relay, uint daemonUid)
    {
        ArgumentNullException.ThrowIfNull(relay);
        if (relay.CredentialsFile.Length == 0)
        {
            return RelayCredentials.Empty;
        }

        try
        {
            var path = relay.CredentialsFile;
            return RelayCredentials.Parse(path, PrivateFile.ReadAllText(path, daemonUid, "Relay.CredentialsFile", "the relay logins", "a credentials file", RelayCredentials.MaxBytes));
        }
        catch (Exception e) when (e is RelayCredentialsException or PrivateFileException)
        {
            throw new ConfigurationException([$"Relay.CredentialsFile: {e.Message}"]);
        }
    }

    /// <summary>The pool of a configuration with relays, with what the store kept; null when Relay.Smarthosts is empty.</summary>
    /// <param name="load">The stored relay states (<c>SqliteStateStore.LoadRelayStatesAsync</c>).</param>
    /// <param name="save">Stores relay states (<c>SqliteStateStore.SaveRelayStatesAsync</c>).</param>
    /// <param name="alert">Alerts.Command with SMTPI_EVENT (<c>AlertCommand.NotifyPoolAsync</c>).</param>
    /// <param name="check">A DNSBL lookup of one address in every zone; null: <see cref="DnsblChecker"/> on Burn.DnsServer.</param>
    public static async Task<DaemonPool?> CreateAsync(
        InterceptorOptions options,
        RelayCredentials credentials,
        Func<CancellationToken, Task<IReadOnlyList<RelayState>>> load,
        Func<IReadOnlyList<RelayState>, CancellationToken, Task> save,
        Func<string, IReadOnlyDictionary<string, string>, CancellationToken, Task> alert,
        PoolMetrics metrics,
        ILoggerFactory loggers,
        TimeProvider time,
        Func<IPAddress, CancellationToken, Task<IReadOnlyList<DnsblResult>>>? check = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(loggers);
        var relays = options.Relay.Smarthosts;
        if (relays.Count == 0)
        {
            return null;
        }

        var logger = loggers.CreateLogger("pool");
        var saved = await load(CancellationToken.None);
        var pool = new RelayPool(relays, options.Burn, saved, time);
        var hour = new RelayHourCounter(time);
        var observer = new PoolObserver(save, alert, hour, metrics, logger, time);
        var auto = UsesMode(options.Relay, RelayMode.Auto);

        // The host's own state means something in Auto mode only.
        metrics.Snapshot = auto ? pool.Snapshot : () => [.. pool.Snapshot().Where(s => s.Name != RelayPool.HostKey)];
        metrics.Hour = hour;
        metrics.Relays = [.. relays.Select(r => r.Name)];
        metrics.Time = time;

        List<(string, IPAddress)> targets = [.. relays.Select(r => (r.Name, IPAddress.Parse(r.EgressAddress)))];
        if (auto && options.Burn.HostAddress.Length > 0)
        {
            targets.Add((RelayPool.HostKey, IPAddress.Parse(options.Burn.HostAddress)));
        }

        if (options.Burn.DnsblZones.Count == 0)
        {
            targets.Clear();
        }

        if (check is null)
        {
            var checker = new DnsblChecker(options.Burn.DnsblZones, DnsblChecker.ParseServer(options.Burn.DnsServer), logger);
            check = checker.CheckAsync;
        }

        var dnsbl = new DnsblService(pool, targets, check, observer, options.Burn.CheckInterval, logger, time);
        var summary = string.Join(", ", pool.Snapshot().Where(s => s.Name != RelayPool.HostKey).Select(s => $"{s.Name} {PoolMetrics.StateOf(s, time.GetUtcNow())}"));
        logger.PoolStarted(relays.Count, summary, options.Burn.DnsblZones.Count == 0 ? "none" : string.Join(",", options.Burn.DnsblZones), options.Burn.CheckInterval.TotalMinutes);
        return new DaemonPool(options, pool, credentials, observer, dnsbl, time);
    }

    private static bool UsesMode(RelayOptions relay, RelayMode mode) =>
        relay.Mode == mode || relay.ModeByUser.Values.Contains(mode);
}
