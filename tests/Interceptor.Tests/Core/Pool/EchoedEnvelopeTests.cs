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

    [TestCase("553 5.7.1 <\"a<S3150 b\"@x.example>: no", "553 5.7.1 : no")]
    [TestCase("553 5.7.1 <\"x>\\\" S3150 y\"@x.example>: no", "553 5.7.1 : no")]
    [TestCase("553 5.7.1 \"x\\\" S3150 y\"@x.example no", "553 5.7.1  no")]
    public void A_quoted_local_part_goes_whole_whatever_it_holds(string line, string expected) =>
        Assert.That(EchoedEnvelope.Strip([line], []), Is.EqualTo(new[] { expected }));

    [TestCase("554 5.7.1 Service unavailable; Sender address [her.example] blocked using dbl.example", true)]
    [TestCase("554 5.7.1 Service unavailable; Sender address [A@HER.example]; blocked using dbl.example", true)]
    [TestCase("450 4.1.1 <a@her.example>: Recipient address rejected: unverified address: host mx said: 550 5.7.606 banned sending IP", false)]
    [TestCase("554 5.7.1 Service unavailable; Client host [203.0.113.1] blocked using zen.example", false)]
    [TestCase("550 5.7.606 Access denied, banned sending IP [203.0.113.1]; see https://sender.her.example.net/", false)]
    public void A_refusal_names_her_envelope_only_in_square_brackets_as_a_dns_list_check_does(string line, bool names) =>
        Assert.That(EchoedEnvelope.Names([line], ["<a@her.example>"]), Is.EqualTo(names));

    [Test]
    public void Only_as_much_as_the_classifier_reads_is_looked_at()
    {
        var line = new string('x', 3000);

        var stripped = EchoedEnvelope.Strip(Enumerable.Repeat(line, 200).ToList(), []);

        Assert.That(stripped.Sum(l => l.Length), Is.EqualTo(2 * BurnClassifier.MaxReplyChars));
    }
}
