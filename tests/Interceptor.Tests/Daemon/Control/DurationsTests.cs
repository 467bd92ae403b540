using Interceptor.Daemon.Control;

namespace Interceptor.Tests.Daemon.Control;

[TestFixture]
public sealed class DurationsTests
{
    [TestCase("30s", 30)]
    [TestCase("30m", 30 * 60)]
    [TestCase("1h", 3600)]
    [TestCase("2d", 2 * 86400)]
    [TestCase("1w", 7 * 86400)]
    [TestCase("366d", 366 * 86400)]
    [TestCase("0090m", 90 * 60)]
    public void Parses_a_number_and_a_unit(string text, int seconds)
    {
        Assert.That(Durations.TryParse(text), Is.EqualTo(TimeSpan.FromSeconds(seconds)));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("h")]
    [TestCase("1")]
    [TestCase("60")]
    [TestCase("0h")]
    [TestCase("-1h")]
    [TestCase("+1h")]
    [TestCase(" 1h")]
    [TestCase("1h ")]
    [TestCase("1 h")]
    [TestCase("1.5h")]
    [TestCase("1,000m")]
    [TestCase("1H")]
    [TestCase("1y")]
    [TestCase("1h30m")]
    [TestCase("367d")]
    [TestCase("53w")]
    [TestCase("99999999999d")]
    [TestCase("١h")]
    public void Refuses_anything_else(string? text)
    {
        Assert.That(Durations.TryParse(text), Is.Null);
    }

    [Test]
    public void Parse_names_the_option_and_shows_examples()
    {
        Assert.That(
            () => Durations.Parse("soon", "--since"),
            Throws.ArgumentException.With.Message.EqualTo("--since: \"soon\" is not a duration such as 30m, 1h, 2d or 1w (a positive whole number and s, m, h, d or w; at most 366 days)"));
    }

    [TestCase(0, "0s")]
    [TestCase(59, "59s")]
    [TestCase(61, "1m 1s")]
    [TestCase((2 * 3600) + (13 * 60) + 5, "2h 13m")]
    [TestCase((3 * 86400) + (4 * 3600), "3d 4h")]
    [TestCase(-5, "0s")]
    public void Formats_the_two_largest_units(int seconds, string expected)
    {
        Assert.That(Durations.Format(TimeSpan.FromSeconds(seconds)), Is.EqualTo(expected));
    }
}
