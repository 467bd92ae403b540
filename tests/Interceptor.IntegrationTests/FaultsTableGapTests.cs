namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 4, case 14, second half: until the table watchdog notices a deleted or flushed table, non-exempt port-25
/// traffic must still not get out directly. The guard table (a filter chain after the redirect) refuses it. A long
/// Interception.VerifyIntervalSeconds and the daemon frozen (it would hear the change and restore the table at once)
/// hold the gap open so the probe is deterministic.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class FaultsTableGapTests
{
    [TestCase("delete table")]
    [TestCase("flush table")]
    [TestCase("flush chain")]
    public async Task While_the_table_is_deleted_or_flushed_a_customers_port_25_connection_is_refused_not_let_out(string how)
    {
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Interception.VerifyIntervalSeconds", 60)));
        string[] tampering = how switch
        {
            "delete table" => ["delete", "table", "inet", NftTable.Name],
            "flush table" => ["flush", "table", "inet", NftTable.Name],
            _ => ["flush", "chain", "inet", NftTable.Name, "output_nat"],
        };
        // The daemon hears the change from the kernel and restores the table at once: frozen, it holds the gap open.
        var (tamper, customer, exempt) = await s.RequireDaemon.WhileFrozenAsync(async () =>
            (await s.Ns.RunAsync("nft", tampering),
             await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "127.0.0.2", 25),
             await TcpProbe.ConnectAsync(s.Ns, null, "127.0.0.2", 25)));
        Assert.That(tamper.Succeeded, Is.True, tamper.Describe());

        Assert.Multiple(() =>
        {
            Assert.That(customer.Refused, Is.True, $"alice must be refused by the guard, not reach the MX directly, after `nft {how}`\n{customer}{s.Describe()}");
            Assert.That(exempt.Greeting ?? "", Does.StartWith("220 fake-mx.test"), $"root is exempt and still reaches the MX\n{exempt}");
        });
    }

    [Test]
    public async Task A_deleted_guard_table_is_restored_by_the_watchdog()
    {
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Interception.VerifyIntervalSeconds", 1)));
        var guard = NftTable.Name + "_guard";
        var tamper = await s.Ns.RunAsync("nft", ["delete", "table", "inet", guard]);
        Assert.That(tamper.Succeeded, Is.True, tamper.Describe());

        ProcessResult? listing = null;
        for (var i = 0; i < 40 && listing?.Succeeded != true; i++)
        {
            await Task.Delay(250);
            listing = await s.Ns.RunAsync("nft", ["list", "table", "inet", guard]);
        }

        Assert.That(listing?.Succeeded, Is.True, $"table inet {guard} was not restored within 10 s\n{s.Describe()}");
        Assert.That(listing!.Stdout, Does.Contain("reject with tcp reset"));
    }
}
