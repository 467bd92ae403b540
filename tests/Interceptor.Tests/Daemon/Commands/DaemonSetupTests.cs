using Interceptor.Core.Attribution;
using Interceptor.Core.Options;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Configuration;
using Interceptor.Linux;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Commands;

/// <summary>The daemon builds the <see cref="RulesetSpec"/> Netfilter renders: Netfilter never sees the options.</summary>
public class DaemonSetupTests
{
    [Test]
    public void The_default_options_give_the_default_table_with_root_and_our_own_uid_exempt()
    {
        var spec = DaemonSetup.SpecFor(new InterceptorOptions());

        Assert.That(spec.Table, Is.EqualTo("smtp_interceptor"));
        Assert.That(spec.ListenPort, Is.EqualTo(24));
        Assert.That(spec.Ports, Is.EqualTo(new[] { 25 }));
        Assert.That(spec.ExemptUids, Is.EqualTo(new[] { 0u, UserDatabase.EffectiveUid }.Distinct().Order()));
    }

    [Test]
    public void A_table_rendered_for_another_daemon_user_exempts_that_user_and_lets_it_answer_scrapes()
    {
        // `rules --user smtp-interceptor` run by root: the table the boot unit renders as that user, not one for root.
        var options = new InterceptorOptions { Metrics = new MetricsOptions { Listen = "127.0.0.1:9326" }, Interception = new InterceptionOptions { ExemptUsers = [] } };

        var spec = DaemonSetup.SpecFor(options, daemonUid: 4321);

        Assert.That(spec.ExemptUids, Is.EqualTo(new[] { 4321u }));
        Assert.That(spec.MetricsServerUid, Is.EqualTo(4321u));
        Assert.That(DaemonSetup.SpecFor(options).MetricsServerUid, Is.EqualTo(UserDatabase.EffectiveUid), "without one, this process's");
    }

    [Test]
    public void The_configured_table_ports_listener_and_blocked_ports_are_taken()
    {
        var options = new InterceptorOptions
        {
            Listen = new ListenOptions { Port = 2600 },
            Interception = new InterceptionOptions { Ports = [587, 25, 587], Table = "mail_redirect", ExemptUsers = ["0"], BlockedPorts = [465] },
        };

        var spec = DaemonSetup.SpecFor(options);

        var expected = new RulesetSpec("mail_redirect", 2600, [25, 587], [0u, UserDatabase.EffectiveUid]) { BlockedPorts = [465], DefaultConnectionRate = new(20, 50), StrayLogGroup = 25 };
        Assert.That(spec, Is.EqualTo(expected));
    }

    [Test]
    public void The_scraper_users_are_root_and_those_named_and_an_unknown_name_is_an_error_naming_the_key()
    {
        var options = new InterceptorOptions { Metrics = new MetricsOptions { Listen = "127.0.0.1:9325" } };

        Assert.That(DaemonSetup.SpecFor(options).MetricsUids, Is.EqualTo(new[] { 0u }), "root always");
        var named = DaemonSetup.SpecFor(options with { Metrics = options.Metrics with { ScraperUsers = ["nobody", "4321"] } });
        Assert.That(named.MetricsUids, Is.EquivalentTo(new[] { 0u, UserDatabase.UidOf("nobody")!.Value, 4321u }));
        Assert.That(named.MetricsEndpoint, Is.EqualTo(System.Net.IPEndPoint.Parse("127.0.0.1:9325")));
        Assert.That(DaemonSetup.SpecFor(new InterceptorOptions()).MetricsEndpoint, Is.Null, "nothing about metrics in the table without the endpoint");

        // Checked with the endpoint off too: check-config names it before someone turns the endpoint on.
        var error = Assert.Throws<ConfigurationException>(() => DaemonSetup.SpecFor(new InterceptorOptions { Metrics = new MetricsOptions { ScraperUsers = ["no-such-scraper"] } }));
        Assert.That(error!.Errors, Is.EqualTo(new[] { "Metrics.ScraperUsers[0]: no such user \"no-such-scraper\" in the user database" }));
    }

    [Test]
    public void The_stray_log_group_is_taken_and_0_turns_it_off()
    {
        var options = new InterceptorOptions();

        Assert.That(DaemonSetup.SpecFor(options with { Interception = new InterceptionOptions { StrayLogGroup = 2525 } }).StrayLogGroup, Is.EqualTo(2525));
        Assert.That(DaemonSetup.SpecFor(options with { Interception = new InterceptionOptions { StrayLogGroup = 0 } }).StrayLogGroup, Is.Zero);
        Assert.That(DaemonSetup.SpecFor(options).StrayLogGroup, Is.EqualTo(25), "on by default");
    }

    [Test]
    public void The_subordinate_uid_ranges_are_taken_with_their_owners_and_get_the_owners_rate()
    {
        var map = new SubordinateUidMap(
            [new(new UidRange(300000, 365535), new SubordinateUidOwner(0, "root"), 1), new(new UidRange(400000, 400009), new SubordinateUidOwner(0, "root"), 2)],
            out _);
        var options = new InterceptorOptions { Limits = new LimitsOptions { Users = new Dictionary<string, QuotaLimits> { ["root"] = new() { ConnectionsPerSecond = 3 } } } };

        var spec = DaemonSetup.SpecFor(options, map);

        Assert.That(spec.SubordinateUidRanges, Is.EqualTo(new OwnedUidRange[] { new(0, new(300000, 365535)), new(0, new(400000, 400009)) }));
        Assert.That(spec.SubordinateConnectionRates.Single(), Is.EqualTo(
            new SubordinateConnectionRate(0, [new(300000, 365535), new(400000, 400009)], new ConnectionRate(3, 50))));
        Assert.That(DaemonSetup.SpecFor(options).SubordinateUidRanges, Is.Empty, "no map (no /etc/subuid): no ranges");
    }

    [Test]
    public void A_listener_port_that_is_also_intercepted_is_a_configuration_error()
    {
        var options = new InterceptorOptions { Interception = new InterceptionOptions { Ports = [24, 25] } };

        var error = Assert.Throws<ConfigurationException>(() => DaemonSetup.SpecFor(options));

        Assert.That(error!.Errors, Has.Some.Contains("Listen.Port 24 is also in Interception.Ports"));
    }

    [Test]
    public void An_unknown_exempt_user_is_named_with_its_key()
    {
        var options = new InterceptorOptions { Interception = new InterceptionOptions { ExemptUsers = ["root", "no-such-user-smtpi", "1001", " 1001"] } };

        var error = Assert.Throws<ConfigurationException>(() => DaemonSetup.SpecFor(options));

        Assert.That(error!.Errors, Is.EqualTo(new[]
        {
            "Interception.ExemptUsers[1]: no such user \"no-such-user-smtpi\" in the user database",
            "Interception.ExemptUsers[3]: no such user \" 1001\" in the user database (a uid is written in digits alone, without a sign or spaces)",
        }), "a uid is digits alone, as --daemon-user and the admin verbs take it");
    }
}
