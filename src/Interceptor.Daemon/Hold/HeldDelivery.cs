using System.Net;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Daemon.Hold;

/// <summary>How one delivery attempt of a released message ended.</summary>
public enum DeliveryKind
{
    Delivered,

    /// <summary>A 4xx or a network fault: try again later.</summary>
    Temporary,

    /// <summary>A 5xx for the message (or for every recipient): do not try again.</summary>
    Permanent,
}

/// <param name="Result">The upstream's reply, or the fault, as one line for the record and the log.</param>
/// <param name="Upstream">The upstream as the transaction line names it.</param>
public readonly record struct DeliveryOutcome(DeliveryKind Kind, string Result, string Upstream);

/// <summary>Delivers a released message (the seam the tests replace).</summary>
public interface IHeldDelivery
{
    /// <param name="message">The held message file: trace header, then the client's dot-stuffed bytes, no end marker.</param>
    Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token);
}

/// <summary>
/// Delivers through the upstream code the sessions use: a lease from the same <see cref="IUpstreamSource"/> (the original
/// destination's connection cache today) for an origin made from the record, then MAIL, RCPT, DATA and the message.
/// When the relay pool lands, the daemon hands its source here instead and the record's route picks the relay.
/// </summary>
public sealed class UpstreamDelivery(IUpstreamSource upstreams) : IHeldDelivery
{
    private const int Chunk = 64 * 1024;

    public async Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(message);
        var origin = new ConnectionOrigin(held.Uid, held.User, new IPEndPoint(IPAddress.Loopback, 0), IPEndPoint.Parse(held.OriginalDestination));
        await using var lease = upstreams.Lease(origin);
        try
        {
            var mail = await lease.MailAsync(new EnvelopeCommand(held.Sender, []), token);
            if (mail.Reply.Code != 250)
            {
                return Refused("MAIL", mail.Reply, lease.Name);
            }

            var accepted = 0;
            SmtpReply? lastRefusal = null;
            var refusedFor = new List<string>();
            foreach (var recipient in held.Recipients)
            {
                var reply = await lease.RcptAsync($"<{recipient}>", token);
                if (reply.Code is >= 200 and < 300)
                {
                    accepted++;
                    continue;
                }

                if (reply.Code is >= 400 and < 500)
                {
                    // Partly accepted is not an answer we can keep: the whole message goes again later.
                    await lease.RsetAsync(token);
                    return Refused($"RCPT {recipient}", reply, lease.Name);
                }

                lastRefusal = reply;
                refusedFor.Add(recipient);
            }

            if (accepted == 0)
            {
                await lease.RsetAsync(token);
                return Refused("RCPT (every recipient)", lastRefusal!, lease.Name);
            }

            var go = await lease.DataAsync(token);
            if (go.Code != 354)
            {
                await lease.RsetAsync(token);
                return Refused("DATA", go, lease.Name);
            }

            var buffer = new byte[Chunk];
            int read;
            while ((read = await message.ReadAsync(buffer, token)) > 0)
            {
                await lease.WriteDataAsync(buffer.AsMemory(0, read), token);
            }

            var verdict = await lease.FinishDataAsync(".\r\n"u8.ToArray(), token);
            var refusedNote = refusedFor.Count == 0 ? "" : $" (refused for {Named(refusedFor)}: {lastRefusal})";
            return verdict.Code is >= 200 and < 300
                ? new DeliveryOutcome(DeliveryKind.Delivered, verdict + refusedNote, lease.Description)
                : Refused("end of data", verdict, lease.Description);
        }
        catch (UpstreamException e)
        {
            lease.Abort();
            return new DeliveryOutcome(DeliveryKind.Temporary, $"upstream {lease.Name}: {e.Message}", lease.Name);
        }
    }

    // The outcome goes into the record, the log line and the journal: her recipients are hers to choose (a thousand
    // refused ones of 256 characters each), so a few are named and the rest counted, as the reply itself is capped.
    private const int NamedRecipients = 5;

    private static string Named(List<string> recipients) =>
        recipients.Count <= NamedRecipients
            ? string.Join(", ", recipients)
            : $"{string.Join(", ", recipients.Take(NamedRecipients))} and {recipients.Count - NamedRecipients} more";

    private static DeliveryOutcome Refused(string step, SmtpReply reply, string upstream) =>
        new(reply.Code is >= 400 and < 500 ? DeliveryKind.Temporary : DeliveryKind.Permanent, $"{step}: {reply}", upstream);
}
