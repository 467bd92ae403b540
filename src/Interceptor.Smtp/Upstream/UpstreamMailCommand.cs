using System.Text;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Upstream;

/// <summary>What of a client's MAIL goes to a given upstream: the parameters it understands, or our refusal of those it cannot honour.</summary>
public static class UpstreamMailCommand
{
    /// <summary>The MAIL arguments ("&lt;a@b&gt; SIZE=10") for an upstream with <paramref name="capabilities"/>, or the refusal.</summary>
    public static (string? Arguments, SmtpReply? Refusal) Render(EnvelopeCommand mail, UpstreamCapabilities capabilities, string upstreamName)
    {
        var line = new StringBuilder(mail.Path);
        foreach (var (keyword, value) in mail.Parameters)
        {
            switch (keyword)
            {
                case "SIZE":
                    if (capabilities.Size)
                    {
                        line.Append(" SIZE=").Append(value);
                    }

                    break;
                case "BODY" when string.Equals(value, "8BITMIME", StringComparison.OrdinalIgnoreCase):
                    if (!capabilities.EightBitMime)
                    {
                        return (null, new SmtpReply(554, "5.6.3", $"upstream {upstreamName} does not support 8BITMIME; send the message 7-bit encoded"));
                    }

                    line.Append(" BODY=8BITMIME");
                    break;
                case "BODY" when string.Equals(value, "7BIT", StringComparison.OrdinalIgnoreCase):
                    if (capabilities.EightBitMime)
                    {
                        line.Append(" BODY=7BIT");
                    }

                    break;
                case "SMTPUTF8" when value is null:
                    if (!capabilities.SmtpUtf8)
                    {
                        return (null, new SmtpReply(553, "5.6.7", $"upstream {upstreamName} does not support SMTPUTF8; use an ASCII address"));
                    }

                    line.Append(" SMTPUTF8");
                    break;
                default:
                    return (null, new SmtpReply(555, "5.5.4", $"MAIL parameter {SessionReplies.Printable(keyword)} is not supported"));
            }
        }

        return (line.ToString(), null);
    }
}
