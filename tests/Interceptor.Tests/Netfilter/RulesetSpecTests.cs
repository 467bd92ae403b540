using Interceptor.Core.Options;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

public class RulesetSpecTests
{
    [Test]
    public void FromOptions_takes_the_defaults_and_sorts_and_deduplicates_uids()
    {
        var spec = RulesetSpec.FromOptions(new InterceptorOptions(), [1000u, 0u, 1000u, 105u]);

        Assert.That(spec.Table, Is.EqualTo("smtp_interceptor"));
        Assert.That(spec.ListenPort, Is.EqualTo(10025));
        Assert.That(spec.Ports, Is.EqualTo(new[] { 25 }));
        Assert.That(spec.ExemptUids, Is.EqualTo(new uint[] { 0, 105, 1000 }));
    }

    [Test]
    public void FromOptions_uses_the_configured_table_ports_and_listener()
    {
        var options = new InterceptorOptions
        {
            Listen = new ListenOptions { Port = 2600 },
            Interception = new InterceptionOptions { Ports = [587, 25, 587], Table = "mail_redirect" },
        };

        var spec = RulesetSpec.FromOptions(options, [0u]);

        Assert.That(spec, Is.EqualTo(new RulesetSpec("mail_redirect", 2600, [25, 587], [0])));
    }

    [Test]
    public void FromOptions_refuses_a_listener_port_that_is_also_intercepted()
    {
        var options = new InterceptorOptions { Interception = new InterceptionOptions { Ports = [25, 10025] } };

        Assert.That(() => RulesetSpec.FromOptions(options, [0u]), Throws.ArgumentException);
    }

    [Test]
    public void A_with_expression_is_normalised_too()
    {
        var spec = new RulesetSpec("smtp_interceptor", 10025, [25], [0]) with { ExemptUids = [7, 3, 7] };

        Assert.That(spec.ExemptUids, Is.EqualTo(new uint[] { 3, 7 }));
    }

    [TestCase("")]
    [TestCase("1abc")]
    [TestCase("smtp interceptor")]
    [TestCase("x}\ndelete table inet filter")]
    [TestCase("a.b")]
    public void Table_names_that_are_not_plain_identifiers_are_refused(string table)
    {
        Assert.That(() => new RulesetSpec(table, 10025, [25], [0]), Throws.ArgumentException);
    }

    [TestCase(0)]
    [TestCase(65536)]
    public void Ports_outside_the_tcp_range_are_refused(int port)
    {
        Assert.That(() => new RulesetSpec("t", port, [25], [0]), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new RulesetSpec("t", 10025, [port], [0]), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void An_empty_port_list_is_refused()
    {
        Assert.That(() => new RulesetSpec("t", 10025, [], [0]), Throws.ArgumentException);
    }

    [Test]
    public void Equal_contents_make_equal_specs_and_ToString_shows_them()
    {
        var a = new RulesetSpec("t", 10025, [25, 587], [0, 105]);
        var b = new RulesetSpec("t", 10025, [587, 25], [105, 0]);

        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()));
        Assert.That(a.ToString(), Is.EqualTo("RulesetSpec { Table = t, ListenPort = 10025, Ports = [25, 587], ExemptUids = [0, 105] }"));
    }
}
