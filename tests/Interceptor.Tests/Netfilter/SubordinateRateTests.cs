using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// Sub-UIDs and the connection rate (issue 19, item 2): each owner's ranges get one rule and one bucket at the owner's
/// rate, and the per-uid meter leaves them all out, so a range of 65,536 uids cannot fill it. Rendering, and the verifier
/// on real nft 1.0.6 listings of what the renderer wrote (see <see cref="SampleCapture"/>).
/// </summary>
public class SubordinateRateTests
{
    private static readonly RulesetSpec Spec = RulesetRendererTests.SubordinateRated;

    private static List<string> Lines(RulesetSpec spec) => [.. RulesetRenderer.Render(spec).Split('\n').Select(l => l.Trim())];

    [Test]
    public void An_owner_without_a_rate_of_its_own_shares_one_bucket_at_the_default_rate_with_its_own_counter()
    {
        var lines = Lines(Spec);

        Assert.That(lines, Has.One.StartWith(
            "tcp dport { 25, 587, 2525, 10025 } meta skuid 600000-665535 ct state new limit rate over 20/second burst 50 packets counter name \"ratelimit_refused_subuids_uid1007\" reject with tcp reset"));
        Assert.That(lines, Has.One.EqualTo("counter ratelimit_refused_subuids_uid1007 {"));
    }

    [Test]
    public void An_owner_with_its_own_rate_gives_it_to_all_its_ranges_in_one_rule()
    {
        var lines = Lines(Spec);

        Assert.That(lines, Has.One.StartWith(
            "tcp dport { 25, 587, 2525, 10025 } meta skuid { 500000-500099, 700000-765535 } ct state new limit rate over 5/second burst 10 packets counter name \"ratelimit_refused_subuids_uid1005\" reject"));
    }

    [Test]
    public void An_unlimited_owner_has_no_rule_but_its_ranges_stay_out_of_the_meter_like_everyone_elses()
    {
        var lines = Lines(Spec);
        var set = lines.IndexOf("set ratelimit_subuids {");

        Assert.That(lines, Has.None.Contains("ratelimit_refused_subuids_uid1006"));
        Assert.That(lines, Has.None.Contains("meta skuid 400000-465535"));
        Assert.That(set, Is.GreaterThan(0));
        Assert.That(lines[(set + 1)..(set + 5)], Has.One.EqualTo("elements = { 400000-465535, 500000-500099, 600000-665535, 700000-765535 }"));
        Assert.That(lines[(set + 1)..(set + 5)], Has.One.EqualTo("flags interval"));
    }

    [Test]
    public void The_owner_rules_come_after_the_suspensions_and_before_the_meter_which_leaves_out_every_sub_uid()
    {
        var lines = Lines(Spec);
        var suspended = lines.FindIndex(l => l.Contains("@suspended_subuids ct state new", StringComparison.Ordinal));
        var owner = lines.FindIndex(l => l.Contains("ratelimit_refused_subuids_uid1005\" reject", StringComparison.Ordinal));
        var meter = lines.FindIndex(l => l.Contains("update @ratelimit_meter", StringComparison.Ordinal));

        Assert.That(owner, Is.GreaterThan(suspended));
        Assert.That(meter, Is.GreaterThan(owner));
        Assert.That(lines[meter], Does.StartWith(
            "tcp dport { 25, 587, 2525, 10025 } meta skuid != @ratelimit_own_users meta skuid != @ratelimit_subuids ct state new update @ratelimit_meter"));
    }

    [Test]
    public void Without_sub_uids_the_table_is_what_it_was()
    {
        var script = RulesetRenderer.Render(RulesetRendererTests.RateLimited with { SubordinateUidRanges = [] });

        Assert.That(script, Is.EqualTo(RulesetRenderer.Render(RulesetRendererTests.RateLimited)));
        Assert.That(script, Does.Not.Contain("subuids_uid").And.Not.Contain("ratelimit_subuids"));
    }

    [Test]
    public void Without_any_connection_rate_sub_uids_add_nothing()
    {
        var spec = RulesetRendererTests.Everything with { SubordinateUidRanges = Spec.SubordinateUidRanges };

        Assert.That(RulesetRenderer.Render(spec), Is.EqualTo(RulesetRenderer.Render(RulesetRendererTests.Everything)));
        Assert.That(spec.SubordinateConnectionRates, Is.Empty);
    }

    [Test]
    public void With_only_user_rates_an_owner_without_one_is_unlimited()
    {
        var spec = Spec with { DefaultConnectionRate = null };
        var rates = spec.SubordinateConnectionRates.ToDictionary(r => r.Owner, r => r.Rate);

        Assert.That(rates, Is.EqualTo(new Dictionary<uint, ConnectionRate?> { [1005] = new(5, 10), [1006] = null, [1007] = null }));
        Assert.That(RulesetRenderer.Render(spec), Does.Contain("ratelimit_refused_subuids_uid1005").And.Not.Contain("ratelimit_refused_subuids_uid1007"));
    }

    [Test]
    public void Specs_with_different_ranges_differ()
    {
        var other = Spec with { SubordinateUidRanges = [.. Spec.SubordinateUidRanges.Skip(1)] };

        Assert.That(other, Is.Not.EqualTo(Spec));
        Assert.That(Spec with { }, Is.EqualTo(Spec));
    }

    [Test]
    public void The_verifier_accepts_what_the_renderer_wrote()
    {
        Assert.That(Differences("subuid-rates.json", Spec), Is.Empty);
    }

    [Test]
    public void A_changed_range_rule_is_reported_as_changed()
    {
        var differences = Differences("subuid-rate-tampered.json", Spec);

        Assert.That(differences, Is.EqualTo(new[]
        {
            "the rule in chain output_filter for the sub-UIDs of uid 1007 (20/s burst 50) matches uids 600000-600001, expected 600000-665535",
        }));
    }

    [Test]
    public void A_meter_rule_that_takes_sub_uids_in_again_is_reported()
    {
        var differences = Differences("subuid-meter-exclusion-missing.json", Spec);

        Assert.That(differences, Is.EqualTo(new[]
        {
            "the rule of set ratelimit_meter in chain output_filter does not leave out the sub-UIDs in set ratelimit_subuids: "
                + "they can fill the meter, and a full meter lets new uids through unlimited",
        }));
    }

    [Test]
    public void A_changed_owner_rate_in_the_spec_is_a_difference()
    {
        var spec = Spec with { UserConnectionRates = [.. Spec.UserConnectionRates, new(1007, new(3, 4))] };

        Assert.That(Differences("subuid-rates.json", spec), Has.Some.EqualTo(
            "the rule in chain output_filter for the sub-UIDs of uid 1007 (3/s burst 4) limits over 20/second burst 50, expected over 3/second burst 4"));
    }

    [Test]
    public void A_table_from_before_sub_uids_misses_their_set_rules_and_exclusion()
    {
        var differences = Differences("rate-limits.json", Spec);

        Assert.That(differences, Does.Contain("set ratelimit_subuids is missing"));
        Assert.That(differences, Does.Contain("counter ratelimit_refused_subuids_uid1007 is missing"));
        Assert.That(differences, Has.Some.StartWith("no rule in chain output_filter enforces the sub-UIDs of uid 1005 (5/s burst 10)"));
        Assert.That(differences, Has.Some.StartWith("the rule of set ratelimit_meter in chain output_filter does not leave out the sub-UIDs"));
    }

    [Test]
    public void Sub_uid_rules_the_spec_does_not_ask_for_are_unexpected()
    {
        var differences = Differences("subuid-rates.json", RulesetRendererTests.RateLimited);

        Assert.That(differences, Has.Count.EqualTo(3));
        Assert.That(differences.Count(d => d.StartsWith("unexpected rule in chain output_filter: it rejects", StringComparison.Ordinal)), Is.EqualTo(2));
        Assert.That(differences, Has.One.Contains("also leaves out the uids in set ratelimit_subuids"));
    }

    private static IReadOnlyList<string> Differences(string sample, RulesetSpec spec) => RateLimitVerifierTests.Differences(sample, spec);

    [Test]
    public void A_sub_uid_range_of_one_uid_which_nft_lists_as_a_plain_uid_is_recognised()
    {
        // A valid line "carol:300000:1": nft prints `meta skuid 300000`; not finding it would refuse the daemon's start
        // and make the watchdog reinstall the table (emptying every bucket) at every check.
        Assert.That(Differences("subuid-single-uid.json", RulesetRendererTests.SubordinateSingleUid), Is.Empty);
    }
}
