using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

public class RulesetRendererTests
{
    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    private static readonly RulesetSpec SeveralPortsAndUids = new("smtp_interceptor", 10025, [2525, 25, 587], [1000, 0, 105, 1000]);

    private static readonly RulesetSpec EmptyExemptSet = new("smtp_interceptor", 10025, [25], []);

    [TestCase("default.nft")]
    [TestCase("multiple-ports-and-uids.nft")]
    [TestCase("empty-exempt-set.nft")]
    public void Render_matches_the_golden_file(string golden)
    {
        var spec = golden switch
        {
            "default.nft" => DefaultSpec,
            "multiple-ports-and-uids.nft" => SeveralPortsAndUids,
            _ => EmptyExemptSet,
        };

        AssertGolden(Path.Combine(NetfilterTestData.SourceDirectory, "Golden", golden), RulesetRenderer.Render(spec), Path.Combine("Golden", golden));
    }

    [Test]
    public void The_example_in_the_nftables_folder_is_the_default_ruleset()
    {
        var path = Path.Combine(NetfilterTestData.RepositoryRoot, "nftables", "smtp_interceptor.nft");
        var rendered = RulesetRenderer.Render(DefaultSpec);
        if (NetfilterTestData.UpdateGolden)
        {
            File.WriteAllText(path, rendered);
        }

        Assert.That(File.ReadAllText(path), Is.EqualTo(rendered), "nftables/smtp_interceptor.nft is stale; rerun the tests with UPDATE_GOLDEN=1");
    }

    [Test]
    public void Render_replaces_only_our_table_in_one_script()
    {
        var script = RulesetRenderer.Render(new RulesetSpec("other_name", 10025, [25], [0]));
        var commands = script.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith(' ')).ToList();

        Assert.That(commands, Is.EqualTo(new[]
        {
            "table inet other_name {}",
            "delete table inet other_name",
            "table inet other_name {",
            "}",
        }));
        Assert.That(script, Does.Not.Contain("flush ruleset"));
    }

    [Test]
    public void Every_rule_has_a_counter_and_a_comment()
    {
        var rules = RulesetRenderer.Render(SeveralPortsAndUids).Split('\n').Where(l => l.Contains("dport", StringComparison.Ordinal)).ToList();

        Assert.That(rules, Has.Count.EqualTo(3));
        Assert.That(rules, Has.All.Contains(" counter ").And.All.Contains(" comment \""));
    }

    [Test]
    public void Several_ports_render_as_an_anonymous_set_and_one_as_a_number()
    {
        Assert.That(RulesetRenderer.PortExpression([25]), Is.EqualTo("25"));
        Assert.That(RulesetRenderer.PortExpression([25, 587, 2525]), Is.EqualTo("{ 25, 587, 2525 }"));
    }

    [Test]
    public void An_empty_exempt_set_is_declared_without_an_elements_line()
    {
        var script = RulesetRenderer.Render(EmptyExemptSet);

        Assert.That(script, Does.Contain("set exempt_uids {"));
        Assert.That(script, Does.Not.Contain("elements"));
    }

    [Test]
    public void Output_does_not_depend_on_the_order_or_repetition_of_the_input()
    {
        var shuffled = new RulesetSpec("smtp_interceptor", 10025, [587, 25, 2525, 25], [105, 1000, 0]);

        Assert.That(RulesetRenderer.Render(shuffled), Is.EqualTo(RulesetRenderer.Render(SeveralPortsAndUids)));
    }

    [Test]
    public void The_listener_port_cannot_be_intercepted()
    {
        var spec = new RulesetSpec("smtp_interceptor", 10025, [25, 10025], [0]);

        Assert.That(() => RulesetRenderer.Render(spec), Throws.ArgumentException.With.Message.Contains("Listen.Port 10025"));
    }

    [Test]
    public void Output_uses_lf_line_ends_and_no_tabs()
    {
        var script = RulesetRenderer.Render(DefaultSpec);

        Assert.That(script, Does.Not.Contain("\r").And.Not.Contain("\t").And.EndsWith("}\n"));
    }

    private static void AssertGolden(string sourcePath, string actual, string relativePath)
    {
        if (NetfilterTestData.UpdateGolden)
        {
            File.WriteAllText(sourcePath, actual);
        }

        Assert.That(actual, Is.EqualTo(NetfilterTestData.Read(relativePath)), $"{relativePath} differs; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff");
    }
}
