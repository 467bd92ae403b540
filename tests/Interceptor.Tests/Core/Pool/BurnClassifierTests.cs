using Interceptor.Core.Options;
using Interceptor.Core.Pool;

namespace Interceptor.Tests.Core.Pool;

/// <summary>The default Burn.Patterns against reply texts as the providers publish them (addresses replaced).</summary>
public class BurnClassifierTests
{
    private static readonly BurnClassifier Defaults = new(BurnOptions.DefaultPatterns);

    private static string? Classify(params string[] lines) => Defaults.Classify(lines);

    [Test]
    public void Microsoft_S3140_network_block_is_a_burn()
    {
        Assert.That(Classify("550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM4PEPF00027A6C.eurprd04.prod.outlook.com]"),
            Is.EqualTo("microsoft-network-block"));
    }

    [Test]
    public void Microsoft_S3150_is_a_burn_by_its_code_alone()
    {
        Assert.That(Classify("550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. (S3150) [Name=Protocol Filter Agent][AGT=PFA]"),
            Is.EqualTo("microsoft-network-block"));
    }

    [Test]
    public void Microsofts_older_SC_001_wording_matches_by_its_sentence()
    {
        Assert.That(Classify("550 SC-001 (BAY004-MC4F3) Unfortunately, messages from IP 203.0.113.9 weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors."),
            Is.EqualTo("microsoft-network-block"));
    }

    [TestCase("5.7.606")]
    [TestCase("5.7.625")]
    [TestCase("5.7.649")]
    public void Microsoft_banned_sending_IP_codes_606_to_649_are_burns(string code)
    {
        Assert.That(Classify($"550 {code} Access denied, banned sending IP [203.0.113.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430)"),
            Is.EqualTo("microsoft-banned-ip"));
    }

    [TestCase("550 5.7.605 Access denied, banned sender")]
    [TestCase("550 5.7.650 something else")]
    [TestCase("550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.")]
    public void Neighbouring_Microsoft_codes_are_not(string reply)
    {
        Assert.That(Classify(reply), Is.Null);
    }

    [Test]
    public void Gmails_unsolicited_rate_block_matches_across_its_wrapped_lines()
    {
        // As Gmail sends it: the sentence is wrapped and each line repeats "421-4.7.0".
        Assert.That(Classify(
            "421-4.7.0 [203.0.113.9      15] Our system has detected an unusual rate of",
            "421-4.7.0 unsolicited mail originating from your IP address. To protect our",
            "421-4.7.0 users from spam, mail sent from your IP address has been temporarily",
            "421-4.7.0 rate limited. Please visit",
            "421-4.7.0  https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
            "421 4.7.0 review our Bulk Email Senders Guidelines. a1si123.250 - gsmtp"),
            Is.EqualTo("gmail-unsolicited-rate"));
    }

    [Test]
    public void Yahoo_TSS04_is_a_burn()
    {
        Assert.That(Classify("421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"),
            Is.EqualTo("yahoo-tss04"));
    }

    [TestCase("554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.9")]
    [TestCase("550 5.7.1 Mail from 203.0.113.9 refused: listed at bl.spamcop.net")]
    public void DNSBL_rejections_are_burns(string reply)
    {
        Assert.That(Classify(reply), Is.EqualTo("dnsbl-rejection"));
    }

    [TestCase("550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table")]
    [TestCase("452 4.2.2 The email account that you tried to reach is over quota.")]
    [TestCase("421 4.7.0 [TSS05] Messages from 203.0.113.9 temporarily deferred due to unexpected volume or user complaints")]
    [TestCase("250 2.0.0 OK 1700000000 a1si123.250 - gsmtp")]
    public void Ordinary_refusals_and_acceptances_are_not_burns(string reply)
    {
        Assert.That(Classify(reply), Is.Null);
    }

    [Test]
    public void Reply_text_drops_every_lines_codes_but_keeps_the_first_enhanced_code()
    {
        Assert.That(BurnClassifier.ReplyText(["550-5.7.606 Access denied,", "550-5.7.606 banned", "550 5.7.606 sending IP"]),
            Is.EqualTo("5.7.606 Access denied, banned sending IP"));
    }

    [Test]
    public void A_pattern_that_backtracks_forever_times_out_as_no_match()
    {
        var classifier = new BurnClassifier([new BurnPatternOptions { Label = "evil", Pattern = "^(a+)+$" }]);

        Assert.That(classifier.Classify(["550 " + new string('a', 4000) + "!"]), Is.Null);
    }
}
