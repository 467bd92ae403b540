using System.Text;
using System.Text.Json;
using Interceptor.Core.Options;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Pool;
using Interceptor.Linux;
using Interceptor.Smtp.Pool;
using Interceptor.Tests.Daemon.Pool;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>The relay pool's admin verbs: the request checks, burn and restore through the real pool and store, the output.</summary>
public class RelayAdminTests
{
    private static readonly PeerCredentials Root = new(4242, 0, 0);

    private static readonly InterceptorOptions PoolOptions = new()
    {
        Relay = new RelayOptions { Mode = RelayMode.Smarthost, Smarthosts = PoolFixture.Relays },
        Burn = new BurnOptions { DnsblZones = [] },
    };

    private static ControlRequest Parse(string json) => ControlRequest.Parse(Encoding.UTF8.GetBytes(json));

    [TestCase("""{"verb":"relay","relay":"relay1"}""", "relay needs an action: burn or restore")]
    [TestCase("""{"verb":"relay","action":"burn","relay":"relay1"}""", "relay burn needs --reason TEXT")]
    [TestCase("""{"verb":"relay","action":"burn","relay":"relay1","reason":"two\nlines"}""", "--reason must be printable ASCII on one line")]
    [TestCase("""{"verb":"relay","action":"restore"}""", "relay restore needs the relay's NAME")]
    [TestCase("""{"verb":"relay","action":"restore","relay":"relay1","reason":"x"}""", "relay restore takes no reason")]
    [TestCase("""{"verb":"host","action":"burn","relay":"relay1","reason":"x"}""", "host takes no relay name")]
    [TestCase("""{"verb":"relays","user":"alice"}""", "relays takes no user")]
    [TestCase("""{"verb":"block","user":"alice","reason":"x","relay":"relay1"}""", "block takes no action and no relay")]
    public void Bad_requests_say_what_is_wrong(string json, string start)
    {
        var error = Assert.Throws<ControlException>(() => Parse(json))!;

        Assert.That(error.Kind, Is.EqualTo(ControlErrors.BadRequest));
        Assert.That(error.Message, Does.StartWith(start));
    }

    [Test]
    public void The_command_line_sends_action_name_and_reason()
    {
        var definition = CommandLineDefinition.Create(NullLoggerFactory.Instance, TextWriter.Null);
        var (result, errors) = definition.Parse(["relay", "burn", "relay1", "--reason", "S3150 from Microsoft"]);

        Assert.That(errors, Is.Empty);
        Assert.That(definition.AdminRequestOf(result), Is.EqualTo(new ControlRequest { Verb = "relay", Action = "burn", Relay = "relay1", Reason = "S3150 from Microsoft" }));
        Assert.That(definition.Parse(["host", "restore"]).Errors, Is.Empty);
        Assert.That(definition.Parse(["relay", "burn", "relay1"]).Errors, Has.One.StartsWith("relay burn needs --reason TEXT"));
    }

    [Test]
    public async Task Burn_then_restore_through_the_pool_and_the_store()
    {
        await using var fixture = new AdminFixture(PoolOptions);
        using var metrics = new PoolMetrics();
        var pool = (await DaemonPool.CreateAsync(PoolOptions, RelayCredentials.Empty, fixture.Store.LoadRelayStatesAsync, fixture.Store.SaveRelayStatesAsync,
            (_, _, _) => Task.CompletedTask, metrics, NullLoggerFactory.Instance, fixture.Clock))!;
        await pool.Observer.StartAsync(CancellationToken.None);
        var service = new AdminService(fixture.Context with { Pool = pool }, NullLogger.Instance);

        var burned = await service.HandleAsync(new ControlRequest { Verb = "relay", Action = "burn", Relay = "RELAY1", Reason = "S3150" }, Root, CancellationToken.None);
        var again = await service.HandleAsync(new ControlRequest { Verb = "relay", Action = "burn", Relay = "relay1", Reason = "S3150" }, Root, CancellationToken.None);
        var unknown = await service.HandleAsync(new ControlRequest { Verb = "relay", Action = "burn", Relay = "relay9", Reason = "x" }, Root, CancellationToken.None);
        var host = await service.HandleAsync(new ControlRequest { Verb = "host", Action = "burn", Reason = "x" }, Root, CancellationToken.None);
        var stored = await fixture.Store.LoadRelayStatesAsync(CancellationToken.None);
        var restored = await service.HandleAsync(new ControlRequest { Verb = "relay", Action = "restore", Relay = "relay1" }, Root, CancellationToken.None);
        var relays = await service.HandleAsync(new ControlRequest { Verb = "relays" }, Root, CancellationToken.None);

        var change = burned.Data!.Value.Deserialize<RelayChangeData>(ControlJson.Options)!;
        Assert.That(change.Message, Is.EqualTo("relay relay1 burned: by an admin: S3150; relay2 promoted from the reserve"));
        Assert.That(change.Stored, Is.True);
        Assert.That(change.State.State, Is.EqualTo("burned"));
        Assert.That(stored.Single(s => s.Name == "relay1").Reason, Is.EqualTo("by an admin: S3150"), "stored before the answer");
        Assert.That(again.Data!.Value.Deserialize<RelayChangeData>(ControlJson.Options)!.Changed, Is.False);
        Assert.That(unknown.Error, Is.EqualTo("no relay named \"relay9\" in Relay.Smarthosts (known: relay1, relay2)"));
        Assert.That(host.Error, Does.StartWith("host burn|restore acts on Auto mode"));
        Assert.That(restored.Data!.Value.Deserialize<RelayChangeData>(ControlJson.Options)!.Message, Is.EqualTo("relay relay1 restored: in reserve"),
            "the rotation holds its one primary's place already (relay2)");
        var rows = relays.Data!.Value.Deserialize<RelaysData>(ControlJson.Options)!;
        Assert.That(rows.Relays.Select(r => (r.Name, r.Role, r.State)), Is.EqualTo(new[] { ("relay2", "standby", "in_rotation"), ("relay1", "primary", "reserve") }));
        Assert.That(rows.Host, Is.Null, "no host row outside Auto mode");
        await pool.Observer.DisposeAsync();
    }

    [Test]
    public async Task Status_has_relay_lines_only_with_a_pool()
    {
        await using var fixture = new AdminFixture();

        var status = await fixture.HandleAsync(new ControlRequest { Verb = "status" });
        Assert.That(status.Data!.Value.TryGetProperty("relays", out _), Is.False, "the JSON of a daemon without a pool is as before");

        var relays = await fixture.HandleAsync(new ControlRequest { Verb = "relays" });
        Assert.That(relays.Error, Is.EqualTo("no relay pool is configured (Relay.Smarthosts is empty)"));
    }

    [Test]
    public void A_relay_line_names_state_hour_and_dnsbl()
    {
        var row = new RelayRow("relay1", "primary", "relay1.example:587 (egress 198.51.100.10)", "burned", new DateTimeOffset(2026, 12, 2, 3, 0, 0, TimeSpan.Zero),
            "DNSBL listed: zen.test 127.0.0.2", 0, "listed: zen.test 127.0.0.2", null, null, true, ["listed: zen.test 127.0.0.2"]);

        Assert.That(AdminRendering.RelayLine(row), Is.EqualTo(
            "relay relay1 (primary): burned since 2026-12-02 03:00:00Z, 0 messages in the last hour, DNSBL listed: zen.test 127.0.0.2: DNSBL listed: zen.test 127.0.0.2"));
        var table = AdminRendering.Relays(new RelaysData("Smarthost", [row], null));
        Assert.That(table, Does.Contain("relay1").And.Contain("burned").And.Contain("evidence against relay1:"));
    }
}
