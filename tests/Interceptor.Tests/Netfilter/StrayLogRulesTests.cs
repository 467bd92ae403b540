using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The guard's two stray-packet rules log each packet to the daemon's NFLOG group (RulesetSpec.StrayLogGroup), so the
/// daemon can name the customer; the verifier holds them to that group and prefix. Samples are real nft listings
/// (<see cref="SampleCapture"/>); <c>Everything</c> asks for group 25, the default spec for none.
/// </summary>
public class StrayLogRulesTests
{
    private const string Table = "table inet smtp_interceptor_guard: ";

    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    [Test]
    public void Both_rules_log_to_the_group_with_their_prefix_as_nft_lists_them()
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "guard-everything.json")));
        var strays = NftJson.Objects(listed, RulesetRendererTests.Everything.GuardTable).Where(o => o.Kind == "rule")
            .Select(o => NftJson.ParseRule(o.Body, [])).Where(r => r.Stray != NftJson.StrayRule.None).ToList();

        Assert.That(strays.Select(r => (r.Stray, r.LogGroup, r.LogPrefix)), Is.EqualTo(new[]
        {
            (NftJson.StrayRule.RefusesKnownSyn, (int?)25, RulesetSpec.StraySynLogPrefix),
            (NftJson.StrayRule.DropsUntracked, (int?)25, RulesetSpec.StrayPacketLogPrefix),
        }));
        Assert.That(GuardDifferences("guard-everything.json", RulesetRendererTests.Everything), Is.Empty);
    }

    [Test]
    public void Logging_to_another_group_is_reported()
    {
        // Whoever listens there would get the packets and their users, and the daemon would name nobody.
        Assert.That(GuardDifferences("guard-stray-log-other-group.json", RulesetRendererTests.Everything), Is.EqualTo(new[]
        {
            Table + $"the rule refusing SYNs of known connections in chain output_guard logs to NFLOG group 26 with prefix \"{RulesetSpec.StraySynLogPrefix}\", not to NFLOG group 25 with prefix \"{RulesetSpec.StraySynLogPrefix}\"",
        }));
    }

    [Test]
    public void A_rule_that_no_longer_logs_is_reported()
    {
        Assert.That(GuardDifferences("guard-stray-log-missing.json", RulesetRendererTests.Everything), Is.EqualTo(new[]
        {
            Table + "the rule dropping customers' untracked and invalid packets in chain output_guard does not log to NFLOG group 25: the daemon cannot name the users it refuses",
        }));
    }

    [Test]
    public void A_log_the_configuration_does_not_ask_for_is_reported()
    {
        Assert.That(GuardDifferences("guard-stray-log-unasked.json"), Is.EqualTo(new[]
        {
            Table + "the rule refusing SYNs of known connections in chain output_guard logs to NFLOG group 25, which Interception.StrayLogGroup 0 does not ask for",
        }));
    }

    [Test]
    public void Another_rule_that_logs_is_not_ours()
    {
        // Only the two stray rules may log: an exempt rule that also logs hands every exempt user's packet to the group.
        var differences = GuardDifferences("guard-exempt-logs.json", RulesetRendererTests.Everything);

        Assert.That(differences, Has.Some.EqualTo(Table + "the rule for set exempt_uids in chain output_guard does not cover port(s) 25, 465, 587, 2525"), string.Join("\n", differences));
    }

    [TestCase("guard-stray-log-twice.json")]
    [TestCase("guard-stray-log-before-matches.json")]
    public void A_second_log_or_one_before_the_matches_is_not_the_refusal(string sample)
    {
        // A second log to the kernel's log (which customers may read) adds a reader; a log before the matches would name
        // every customer packet to a mail port that reaches the rule as a stray SYN.
        var differences = GuardDifferences(sample, RulesetRendererTests.Everything);

        Assert.That(differences, Has.Some.StartsWith(Table + "no rule in chain output_guard refuses SYNs to port(s) 25, 465, 587, 2525"), string.Join("\n", differences));
    }

    [Test]
    public void A_log_to_group_0_is_a_log_too()
    {
        Assert.That(GuardDifferences("guard-stray-log-group-zero.json"), Is.EqualTo(new[]
        {
            Table + "the rule refusing SYNs of known connections in chain output_guard logs to NFLOG group 0, which Interception.StrayLogGroup 0 does not ask for",
        }));
    }

    private static IReadOnlyList<string> GuardDifferences(string sample, RulesetSpec? spec = null)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindGuardDifferences(listed, spec ?? DefaultSpec);
    }
}
