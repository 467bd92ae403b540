using System.Net;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The metrics endpoint's set and three rules (RulesetSpec.Metrics.cs): only root and Metrics.ScraperUsers reach the
/// endpoint, everyone else's SYN gets a TCP reset from the kernel, before the endpoint's queues see it, and a listener
/// not of the daemon's uid on the endpoint's port cannot answer them. The verifier
/// reads real nft listings (<see cref="SampleCapture"/>); the kernel test applies the table in a throwaway namespace.
/// </summary>
[NonParallelizable]
public class MetricsRulesTests
{
    internal static readonly RulesetSpec Metrics = new("smtp_interceptor", 10025, [25], [0])
    {
        MetricsEndpoint = IPEndPoint.Parse("127.0.0.1:9325"),
        MetricsUids = [1010, 0],
    };

    internal static readonly RulesetSpec MetricsV6 = RulesetRendererTests.RateLimited with
    {
        MetricsEndpoint = IPEndPoint.Parse("[::1]:9325"),
        MetricsUids = [0],
    };

    private const uint Nobody = 65534;

    [Test]
    public void The_rules_come_before_the_pass_for_open_connections_and_match_syns_in_every_state()
    {
        var lines = RulesetRenderer.Render(Metrics with { MetricsServerUid = 995 }).Split('\n').Select(l => l.Trim()).ToList();
        var own = lines.FindIndex(l => l.StartsWith("tcp sport 9325 oifname \"lo\" meta skuid 995 counter accept", StringComparison.Ordinal));
        var synAcks = lines.FindIndex(l => l.StartsWith("tcp sport 9325 oifname \"lo\" tcp flags & syn == syn counter drop", StringComparison.Ordinal));
        var drop = lines.FindIndex(l => l.StartsWith("tcp sport 9325 oifname \"lo\" meta skuid != 995 counter drop", StringComparison.Ordinal));
        var accept = lines.FindIndex(l => l.StartsWith("ip daddr 127.0.0.1 tcp dport 9325 tcp flags syn / syn,ack meta skuid @metrics_users counter accept", StringComparison.Ordinal));
        var refuse = lines.FindIndex(l => l.StartsWith("ip daddr 127.0.0.1 tcp dport 9325 tcp flags syn / syn,ack counter reject with tcp reset", StringComparison.Ordinal));
        var pass = lines.FindIndex(l => l.StartsWith("ct state established,related accept", StringComparison.Ordinal));

        Assert.Multiple(() =>
        {
            Assert.That(own, Is.GreaterThan(0), "the daemon's own answers first");
            Assert.That(synAcks, Is.EqualTo(own + 1), "then every other SYN-ACK dropped, socketless ones too");
            Assert.That(drop, Is.EqualTo(synAcks + 1), "then what other users' sockets send");
            Assert.That(accept, Is.EqualTo(drop + 1), "the scrapers' rule");
            Assert.That(refuse, Is.EqualTo(accept + 1), "the refusal right after it");
            Assert.That(pass, Is.EqualTo(refuse + 1), "then the filter chain's pass");
            Assert.That(lines, Does.Contain("elements = { 0, 1010 }"));
            Assert.That(RulesetRenderer.Render(MetricsV6), Does.Contain("ip6 daddr ::1 tcp dport 9325 tcp flags syn / syn,ack counter reject with tcp reset"));
            Assert.That(RulesetRenderer.Render(MetricsV6), Does.Contain("tcp sport 9325 oifname \"lo\" meta skuid != 0 counter drop"));
            Assert.That(RulesetRenderer.Render(Metrics with { MetricsEndpoint = null }), Does.Not.Contain("metrics"), "nothing without the endpoint");
        });
    }

    [Test]
    public void The_table_as_installed_matches_and_without_the_endpoint_its_rules_are_unexpected()
    {
        Assert.That(RateLimitVerifierTests.Differences("metrics.json", Metrics), Is.Empty);
        Assert.That(RateLimitVerifierTests.Differences("metrics-v6-rate-limited.json", MetricsV6), Is.Empty);

        var differences = RateLimitVerifierTests.Differences("metrics.json", Metrics with { MetricsEndpoint = null, MetricsUids = [] });
        Assert.That(differences, Has.Count.EqualTo(5));
        Assert.That(differences[0], Does.StartWith("unexpected rule in chain output_filter: it accepts (handle").And.Contain("own answers from the metrics endpoint's port"));
        Assert.That(differences[1], Does.StartWith("unexpected rule in chain output_filter: it does something else (handle").And.Contain("Any other local SYN-ACK"));
        Assert.That(differences[2], Does.StartWith("unexpected rule in chain output_filter: it does something else (handle").And.Contain("answering from the metrics endpoint's port"));
        Assert.That(differences[3], Does.StartWith("unexpected rule in chain output_filter: it accepts (handle"));
        Assert.That(differences[4], Does.StartWith("unexpected rule in chain output_filter: it rejects (handle"));
    }

    [TestCase("metrics-refusal-missing.json", "no rule in chain output_filter refuses other users' connections to the metrics endpoint 127.0.0.1:9325: any local user can flood it and keep the scraper out")]
    [TestCase("metrics-refusal-other-port.json", "no rule in chain output_filter refuses other users' connections to the metrics endpoint 127.0.0.1:9325: any local user can flood it and keep the scraper out")]
    [TestCase("metrics-refusal-after-pass.json", "the rules for the metrics endpoint 127.0.0.1:9325 in chain output_filter come after the rule for open connections, which lets a SYN that conntrack files under a known connection through first")]
    [TestCase("metrics-accept-after-refusal.json", "the rule for set metrics_users in chain output_filter comes after the refusal at the metrics endpoint 127.0.0.1:9325, so the scraper is refused")]
    [TestCase("metrics-drop-missing.json", "no rule in chain output_filter drops what sockets not of uid 0 send from the metrics endpoint 127.0.0.1:9325: a user who takes its port while the daemon is down can answer the scrapers, or the daemon cannot")]
    [TestCase("metrics-drop-other-uid.json", "no rule in chain output_filter drops what sockets not of uid 0 send from the metrics endpoint 127.0.0.1:9325: a user who takes its port while the daemon is down can answer the scrapers, or the daemon cannot")]
    [TestCase("metrics-synack-drop-missing.json", "no rule in chain output_filter drops every other SYN-ACK from the metrics endpoint 127.0.0.1:9325: a user who takes its port while the daemon is down can answer the scrapers, or the daemon cannot")]
    [TestCase("metrics-drop-after-pass.json", "the drops of other users' answers at the metrics endpoint 127.0.0.1:9325 in chain output_filter come after the rule for open connections, which lets them out first")]
    [TestCase("metrics-own-after-synack-drop.json", "the drop of SYN-ACKs from the metrics endpoint 127.0.0.1:9325 in chain output_filter comes before the accept of the daemon's own, so no scrape connects")]
    [TestCase("metrics-set-element-missing.json", "set metrics_users lacks UID(s) 1010: these users' scrapes are refused by the kernel")]
    public void A_changed_metrics_rule_or_set_is_reported(string sample, string difference)
    {
        Assert.That(RateLimitVerifierTests.Differences(sample, Metrics), Does.Contain(difference));
    }

    [Test]
    public void Another_rule_accepting_the_metrics_port_before_the_refusal_is_reported()
    {
        // The exempt users' rule widened to the metrics port, in every state, and moved above the metrics rules: the
        // exempt users (the MTA's among them) would reach the endpoint whatever metrics_users says.
        var differences = RateLimitVerifierTests.Differences("metrics-exempt-widened-first.json", Metrics);

        Assert.That(differences, Has.Some.StartsWith("a rule in chain output_filter accepts port 9325 before the refusal at the metrics endpoint 127.0.0.1:9325: it accepts (handle"));
    }

    [Test]
    public void A_rule_accepting_before_the_drop_of_other_users_answers_is_reported()
    {
        var differences = RateLimitVerifierTests.Differences("metrics-drop-accepted-first.json", Metrics);

        Assert.That(differences, Has.Some.StartsWith("a rule in chain output_filter accepts before the drop of other users' answers at the metrics endpoint 127.0.0.1:9325: it accepts (handle").And.Contain("added by hand"));
    }

    [Test]
    public void A_refusal_for_new_connections_only_is_not_the_refusal()
    {
        // A SYN conntrack files under a connection it has is "established": new only, it would reach the endpoint.
        var differences = RateLimitVerifierTests.Differences("metrics-refusal-new-only.json", Metrics);

        Assert.That(differences, Does.Contain("no rule in chain output_filter refuses other users' connections to the metrics endpoint 127.0.0.1:9325: any local user can flood it and keep the scraper out"));
        Assert.That(differences, Has.Some.StartWith("unexpected rule in chain output_filter: it rejects"));
    }

    [Test]
    public void A_metrics_port_that_is_intercepted_blocked_or_the_listeners_is_refused()
    {
        Assert.Multiple(() =>
        {
            foreach (var (spec, key) in new[]
            {
                (Metrics with { MetricsEndpoint = IPEndPoint.Parse("127.0.0.1:25") }, "Interception.Ports"),
                (Metrics with { MetricsEndpoint = IPEndPoint.Parse("127.0.0.1:465"), BlockedPorts = [465] }, "Interception.BlockedPorts"),
                (Metrics with { MetricsEndpoint = IPEndPoint.Parse("127.0.0.1:10025") }, "Listen.Port"),
            })
            {
                var error = Assert.Throws<ArgumentException>(spec.EnsureConsistent);
                Assert.That(error!.Message, Does.StartWith($"Metrics.Listen port {spec.MetricsEndpoint!.Port} is also in {key}; the metrics endpoint needs a port of its own."));
            }

            Assert.That(() => Metrics with { MetricsEndpoint = IPEndPoint.Parse("192.0.2.1:9325") }, Throws.ArgumentException.With.Message.StartsWith("Metrics.Listen 192.0.2.1:9325 is not a loopback address."));
            Assert.That((Metrics with { MetricsEndpoint = IPEndPoint.Parse("[::ffff:127.0.0.1]:9325") }).MetricsEndpoint, Is.EqualTo(IPEndPoint.Parse("127.0.0.1:9325")), "a mapped address is what the packet carries");
            Assert.That(Metrics with { MetricsUids = [0, 1010, 1010] }, Is.EqualTo(Metrics), "sorted and distinct");
            Assert.That(Metrics with { MetricsUids = [0] }, Is.Not.EqualTo(Metrics));
            Assert.That(Metrics.ToString(), Does.Contain("MetricsEndpoint = 127.0.0.1:9325, MetricsUids = [0, 1010], MetricsServerUid = 0"));
            Assert.That(Metrics with { MetricsServerUid = 995 }, Is.Not.EqualTo(Metrics), "the daemon's uid is part of the table");
        });
    }

    [Test]
    public async Task The_kernel_lets_the_scrapers_through_and_resets_everyone_else()
    {
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        await new RulesetManager(ns.Nft).InstallAsync(Metrics, CancellationToken.None);
        using var endpoint = ns.Listen("127.0.0.1:9325", "127.0.0.2:9325");

        var root = ns.Connect(0, "127.0.0.1", 9325);
        var scraper = ns.Connect(1010, "127.0.0.1", 9325);
        var customer = ns.Connect(Nobody, "127.0.0.1", 9325);
        var elsewhere = ns.Connect(Nobody, "127.0.0.2", 9325);

        Assert.Multiple(async () =>
        {
            Assert.That(root.Outcome, Is.EqualTo("connected"));
            Assert.That(scraper.Outcome, Is.EqualTo("connected"), "a Metrics.ScraperUsers uid");
            Assert.That(customer.Outcome, Is.EqualTo("refused"));
            Assert.That(customer.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "a TCP reset, not a timeout");
            Assert.That(elsewhere.Outcome, Is.EqualTo("connected"), "the same port on another address is not the endpoint's");
            Assert.That(endpoint.WaitForAccepted(3), Is.EquivalentTo(new[] { "127.0.0.1 9325", "127.0.0.1 9325", "127.0.0.2 9325" }), "the endpoint saw the two scrapers only");
            Assert.That(await ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Metrics == NftJson.MetricsRule.RefusesOthers), Is.EqualTo(1), "the refusal counted the customer's SYN");
            Assert.That(await ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Metrics == NftJson.MetricsRule.AcceptsScrapers), Is.EqualTo(2));
        });

        Assert.That(await new RulesetManager(ns.Nft).FindDifferencesAsync(Metrics, CancellationToken.None), Is.Empty);
    }

    [Test]
    public async Task A_listener_not_of_the_daemons_uid_on_the_endpoints_port_cannot_answer_the_scrapers()
    {
        // A customer took the port while the daemon was down, with listen(fd, 0): her queue is full after the first
        // half-open connection, so the kernel answers the next SYN with a syncookie SYN-ACK, which has no socket and so
        // no owner. Every connection of root's must fail, none reach her listener.
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        await new RulesetManager(ns.Nft).InstallAsync(Metrics, CancellationToken.None);
        using var squatter = ns.ListenAs(Nobody, "127.0.0.1:9325@0");
        using var besides = ns.ListenAs(Nobody, "::1:9325");

        var first = ns.Connect(0, "127.0.0.1", 9325);
        var cookie = ns.Connect(0, "127.0.0.1", 9325);
        var localhost = ns.Connect(0, "::1", 9325);

        Assert.Multiple(async () =>
        {
            Assert.That(first.Outcome, Is.EqualTo("timeout"), "her SYN-ACK is dropped (the kernel gives it the listener's owner)");
            Assert.That(cookie.Outcome, Is.EqualTo("timeout"), "her syncookie SYN-ACK, which has no owner, is dropped too");
            Assert.That(localhost.Outcome, Is.EqualTo("timeout"), "::1, which a scraper aimed at localhost tries first, while the endpoint is on 127.0.0.1");
            Assert.That(squatter.WaitForAccepted(1), Is.Empty, "her listener completed no connection");
            Assert.That(besides.Accepted, Is.Empty, "nor did the one on ::1");
            Assert.That(await ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Metrics == NftJson.MetricsRule.DropsOtherSynAcks), Is.GreaterThan(1), "her SYN-ACKs, the socketless ones too");
        });
    }
}
