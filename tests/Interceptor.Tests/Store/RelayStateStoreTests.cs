using Interceptor.Core.Pool;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

/// <summary>The relay pool's table (schema v3): states round-trip, and a v2 file is upgraded in place.</summary>
public class RelayStateStoreTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void CreateDirectory() => _dir = new StoreTestDirectory();

    [TearDown]
    public void DeleteDirectory() => _dir.Dispose();

    private static readonly RelayState Burned = new()
    {
        Name = "relay1",
        Status = RelayStatus.Burned,
        Order = 3,
        Used = true,
        Since = Records.Base,
        ConsecutiveFailures = 2,
        DownUntil = Records.Base.AddSeconds(90),
        BurnedSince = Records.Base,
        Reason = "5 blocklist replies within 60 min (last: microsoft-banned-ip)",
        Evidence = ["550 5.7.606 Access denied, banned sending IP [198.51.100.10]", "listed: zen.example 127.0.0.2"],
        CleanChecks = 1,
        LastDnsbl = "clean",
        LastDnsblAt = Records.Base.AddHours(1),
    };

    [Test]
    public async Task Relay_states_survive_closing_and_reopening_and_a_save_replaces_the_row()
    {
        await using (var store = _dir.Open())
        {
            await store.SaveRelayStatesAsync([Burned with { Reason = "first" }, new RelayState { Name = RelayPool.HostKey, Since = Records.Base }], CancellationToken.None);
            await store.SaveRelayStatesAsync([Burned], CancellationToken.None);
        }

        await using var reopened = _dir.Open();
        var states = await reopened.LoadRelayStatesAsync(CancellationToken.None);

        Assert.That(states, Has.Count.EqualTo(2));
        Assert.That(states.Single(s => s.Name == "relay1"), Is.EqualTo(Burned));
        Assert.That(states.Single(s => s.Name == RelayPool.HostKey), Is.EqualTo(new RelayState { Name = RelayPool.HostKey, Since = Records.Base }));
    }

    [Test]
    public async Task A_version_2_file_is_upgraded_in_place_keeping_its_rows()
    {
        // A v2 file: what the daemon before the relay pool left (the same schema less relay_states and its version row).
        await using (var store = _dir.Open())
        {
            await store.RecordTransactionAsync(Records.Transaction("kept", Records.Base), CancellationToken.None);
            await store.RunOnWriterAsync(c => Execute(c, "DROP TABLE relay_states; DELETE FROM schema_version WHERE version >= 3;"));
        }

        await using var upgraded = _dir.Open();

        Assert.That(await upgraded.RunOnWriterAsync(c => Scalar(c, "SELECT max(version) FROM schema_version;")), Is.EqualTo(3L));
        Assert.That(Schema.CurrentVersion, Is.EqualTo(3));
        Assert.That((await upgraded.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Select(t => t.Id), Is.EqualTo(new[] { "kept" }));
        await upgraded.SaveRelayStatesAsync([Burned], CancellationToken.None);
        Assert.That(await upgraded.LoadRelayStatesAsync(CancellationToken.None), Is.EqualTo(new[] { Burned }));
    }

    [Test]
    public async Task A_pool_restarted_from_the_store_keeps_its_burned_relay_out()
    {
        var relays = new[]
        {
            new Interceptor.Core.Options.SmarthostOptions { Name = "relay1", Host = "r1.example", EgressAddress = "198.51.100.10" },
            new Interceptor.Core.Options.SmarthostOptions { Name = "relay2", Host = "r2.example", EgressAddress = "198.51.100.11", Role = Interceptor.Core.Options.SmarthostRole.Standby },
        };
        await using (var store = _dir.Open())
        {
            var pool = new RelayPool(relays, new(), [], TimeProvider.System);
            await store.SaveRelayStatesAsync(pool.Burn("relay1", "admin").Changed, CancellationToken.None);
        }

        await using var reopened = _dir.Open();
        var restarted = new RelayPool(relays, new(), await reopened.LoadRelayStatesAsync(CancellationToken.None), TimeProvider.System);

        Assert.That(restarted.Choose(new HashSet<string>()), Is.EqualTo("relay2"));
    }

    private static int Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
