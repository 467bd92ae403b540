using Interceptor.Core.Pool;

namespace Interceptor.Tests.Core.Pool;

public class EchoedEnvelopeTests
{
    [TestCase("553 5.7.1 <S3150@x.example>: Sender address rejected", "553 5.7.1 : Sender address rejected")]
    [TestCase("550 5.1.1 S3150@x.example... User unknown", "550 5.1.1  User unknown")]
    [TestCase("550 5.1.1 <\"blocked using\"@x.example>: no", "550 5.1.1 : no")]
    [TestCase("550 5.1.1 \"blocked using\"@x.example no", "550 5.1.1  no")]
    [TestCase("554 5.7.1 Relay access denied for TSS04.x.example.", "554 5.7.1 Relay access denied for ")]
    [TestCase("550 5.7.606 Access denied, banned sending IP [203.0.113.1] (S3150). <https://sender.office.com/>",
        "550 5.7.606 Access denied, banned sending IP [203.0.113.1] (S3150). <https://sender.office.com/>")]
    public void What_she_wrote_is_taken_out_and_nothing_else(string line, string expected) =>
        Assert.That(EchoedEnvelope.Strip([line], ["<a@tss04.x.example>"]), Is.EqualTo(new[] { expected }));

    [Test]
    public void Only_as_much_as_the_classifier_reads_is_looked_at()
    {
        var line = new string('x', 3000);

        var stripped = EchoedEnvelope.Strip(Enumerable.Repeat(line, 200).ToList(), []);

        Assert.That(stripped.Sum(l => l.Length), Is.EqualTo(2 * BurnClassifier.MaxReplyChars));
    }
}
