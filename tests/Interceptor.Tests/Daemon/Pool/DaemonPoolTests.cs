using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Pool;
using Interceptor.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Pool;

/// <summary>The pool the daemon builds: from the configuration and the store (a restart keeps a burn), and its credentials check.</summary>
public class DaemonPoolTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-daemon-pool-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private static readonly InterceptorOptions Options = new()
    {
        Relay = new RelayOptions { Mode = RelayMode.Smarthost, Smarthosts = PoolFixture.Relays },
        Burn = new BurnOptions { DnsblZones = [] },
    };

    private static Task<DaemonPool?> CreateAsync(SqliteStateStore store, PoolMetrics metrics, InterceptorOptions? options = null) =>
        DaemonPool.CreateAsync(options ?? Options, Interceptor.Smtp.Pool.RelayCredentials.Empty, store.LoadRelayStatesAsync, store.SaveRelayStatesAsync,
            (_, _, _) => Task.CompletedTask, metrics, NullLoggerFactory.Instance, TimeProvider.System);

    [Test]
    public async Task A_burn_stored_by_one_daemon_is_what_the_next_one_starts_with()
    {
        using var metrics = new PoolMetrics();
        await using (var store = SqliteStateStore.Open(Path.Combine(_directory, "state"), TimeProvider.System, NullLogger.Instance))
        {
            var first = (await CreateAsync(store, metrics))!;
            await first.Observer.StartAsync(CancellationToken.None);
            first.Observer.Publish(first.Pool.Burn("relay1", "by an admin: test"));
            await first.Observer.DisposeAsync();
        }

        await using var reopened = SqliteStateStore.Open(Path.Combine(_directory, "state"), TimeProvider.System, NullLogger.Instance);
        var second = (await CreateAsync(reopened, metrics))!;

        var states = second.Pool.Snapshot().ToDictionary(s => s.Name);
        Assert.That(states["relay1"].Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(states["relay1"].Reason, Is.EqualTo("by an admin: test"));
        Assert.That(states["relay2"].Status, Is.EqualTo(RelayStatus.InRotation));
        Assert.That(second.Pool.Choose(new HashSet<string>()), Is.EqualTo("relay2"));
        await second.Observer.DisposeAsync();
    }

    [Test]
    public async Task No_relays_no_pool()
    {
        using var metrics = new PoolMetrics();
        await using var store = SqliteStateStore.Open(Path.Combine(_directory, "state"), TimeProvider.System, NullLogger.Instance);

        Assert.That(await CreateAsync(store, metrics, new InterceptorOptions()), Is.Null);
    }

    [Test]
    public void A_credentials_file_others_may_read_is_a_configuration_error_naming_file_and_mode()
    {
        var path = Path.Combine(_directory, "relay-credentials");
        File.WriteAllText(path, "alice site-alice s3cret-a\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var error = Assert.Throws<ConfigurationException>(() => DaemonPool.LoadCredentials(new RelayOptions { CredentialsFile = path }))!;

        Assert.That(error.Errors, Has.One.StartsWith($"Relay.CredentialsFile: {path}: mode 0644 lets others"));
        Assert.That(error.Message, Does.Not.Contain("s3cret-a").And.Not.Contain("site-alice"));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.That(DaemonPool.LoadCredentials(new RelayOptions { CredentialsFile = path }).Users, Is.EqualTo(new[] { "alice" }));
    }
}
