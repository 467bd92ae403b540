using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Tests.Smtp.Protocol;

public class SessionRepliesTests
{
    [TestCase(451, "4.4.1", "421 4.4.1 no relay available: relay1 refused the connection\r\n")]
    [TestCase(454, "4.7.0", "421 4.7.0 no relay available: relay1 refused the connection\r\n")]
    [TestCase(421, "4.4.1", "421 4.4.1 no relay available: relay1 refused the connection\r\n")]
    [TestCase(550, "5.7.1", "554 5.7.1 no relay available: relay1 refused the connection\r\n")]
    [TestCase(554, "5.7.1", "554 5.7.1 no relay available: relay1 refused the connection\r\n")]
    public void A_refusal_in_place_of_the_greeting_takes_a_greetings_code_and_keeps_its_enhanced_code_and_text(int code, string enhanced, string wire)
    {
        var refusal = new SmtpReply(code, enhanced, "no relay available: relay1 refused the connection");

        Assert.That(SessionReplies.AsGreeting(refusal).ToWire(), Is.EqualTo(wire));
    }
}
