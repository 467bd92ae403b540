using Interceptor.Smtp.Protocol;

namespace Interceptor.Tests.Smtp.Protocol;

public class EnvelopeCommandTests
{
    [Test]
    public void Parses_address_and_parameters()
    {
        var (command, refusal) = EnvelopeCommand.Parse("FROM:<a@b.example> SIZE=1000 body=8bitmime SMTPUTF8", "FROM:", allowNullPath: true);

        Assert.That(refusal, Is.Null);
        Assert.That(command!.Address, Is.EqualTo("a@b.example"));
        Assert.That(command.Parameter("SIZE"), Is.EqualTo("1000"));
        Assert.That(command.Parameter("BODY"), Is.EqualTo("8bitmime"));
        Assert.That(command.HasParameter("SMTPUTF8"), Is.True);
        Assert.That(command.Path, Is.EqualTo("<a@b.example>"));
    }

    [Test]
    public void Accepts_the_null_sender_only_where_allowed()
    {
        Assert.That(EnvelopeCommand.Parse("FROM:<>", "FROM:", allowNullPath: true).Command!.Address, Is.Empty);
        Assert.That(EnvelopeCommand.Parse("TO:<>", "TO:", allowNullPath: false).Refusal!.Code, Is.EqualTo(501));
    }

    [Test]
    public void Tolerates_a_space_after_the_colon_and_missing_brackets_like_legacy_scripts_send()
    {
        Assert.That(EnvelopeCommand.Parse("FROM: <a@b>", "FROM:", true).Command!.Address, Is.EqualTo("a@b"));
        Assert.That(EnvelopeCommand.Parse("TO:c@d", "TO:", false).Command!.Address, Is.EqualTo("c@d"));
    }

    [Test]
    public void Keeps_the_quotes_of_a_quoted_local_part()
    {
        var (command, _) = EnvelopeCommand.Parse("TO:<\"john doe\"@example.com>", "TO:", false);

        Assert.That(command!.Path, Is.EqualTo("<\"john doe\"@example.com>"));
    }

    [Test]
    public void Drops_a_source_route()
    {
        Assert.That(EnvelopeCommand.Parse("TO:<@relay.example:user@example.com>", "TO:", false).Command!.Address, Is.EqualTo("user@example.com"));
    }

    [Test]
    public void Refuses_a_local_part_over_64_characters()
    {
        var (_, refusal) = EnvelopeCommand.Parse($"TO:<{new string('a', 65)}@example.com>", "TO:", false);

        Assert.That(refusal!.Code, Is.EqualTo(501));
        Assert.That(refusal.Text, Does.Contain("local part"));
    }

    [Test]
    public void Refuses_a_domain_over_255_characters()
    {
        var (_, refusal) = EnvelopeCommand.Parse($"TO:<a@{new string('d', 250)}.example>", "TO:", false);

        Assert.That(refusal!.Code, Is.EqualTo(501));
    }

    [TestCase("TO:<user%other.example@relay.example>")]
    [TestCase("TO:<other.example!user@relay.example>")]
    public void Refuses_percent_and_bang_routing(string argument)
    {
        Assert.That(EnvelopeCommand.Parse(argument, "TO:", false).Refusal!.Code, Is.EqualTo(553));
    }

    [TestCase("TO:user")]
    [TestCase("TO:<a@b")]
    [TestCase("FROM:<a@b>")]
    [TestCase("TO:<a@b> =x")]
    public void Refuses_malformed_commands_with_501(string argument)
    {
        Assert.That(EnvelopeCommand.Parse(argument, "TO:", false).Refusal!.Code, Is.EqualTo(501));
    }

    [Test]
    public void Accepts_bare_postmaster()
    {
        Assert.That(EnvelopeCommand.Parse("TO:<Postmaster>", "TO:", false).Refusal, Is.Null);
    }

    [Test]
    public void Command_verbs_are_case_insensitive()
    {
        var line = CommandLine.Parse("mail FROM:<a@b>");

        Assert.That(line.Verb, Is.EqualTo("MAIL"));
        Assert.That(line.Argument, Is.EqualTo("FROM:<a@b>"));
    }
}
