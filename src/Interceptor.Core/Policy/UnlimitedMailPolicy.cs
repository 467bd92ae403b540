using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>
/// The policy that admits everything: no suspension, no connection cap, no quota over time, nothing recorded. A message
/// still has bounds, because the protocol needs them (the size a session advertises and enforces while streaming, and
/// the recipients of one message): the defaults unless given. For tools and tests of the protocol alone; the daemon
/// always runs <see cref="MailPolicy"/>.
/// </summary>
public sealed class UnlimitedMailPolicy(QuotaLimits? messageBounds = null) : IMailPolicy
{
    private readonly QuotaLimits _limits = new()
    {
        MessageSizeBytes = messageBounds?.MessageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes,
        RecipientsPerMessage = messageBounds?.RecipientsPerMessage ?? QuotaLimits.Defaults.RecipientsPerMessage,
    };

    public QuotaLimits LimitsFor(string user) => _limits;

    public Task<SmtpReply?> OpenConnectionAsync(uint uid, string user, CancellationToken cancellationToken) => Task.FromResult<SmtpReply?>(null);

    public void CloseConnection(uint uid)
    {
        // No connection cap: nothing was counted.
    }

    public Task<(MessageTicket? Ticket, SmtpReply? Refusal)> StartMessageAsync(uint uid, string user, long? declaredSize, CancellationToken cancellationToken)
    {
        if (declaredSize > _limits.MessageSizeBytes)
        {
            var tooBig = new QuotaExceeded(RefusalKind.MessageSize, (int)Math.Min(int.MaxValue, declaredSize.Value), (int)Math.Min(int.MaxValue, _limits.MessageSizeBytes!.Value));
            return Task.FromResult<(MessageTicket?, SmtpReply?)>((null, QuotaReplies.For(tooBig, user)));
        }

        return Task.FromResult<(MessageTicket?, SmtpReply?)>((new MessageTicket(uid, user, _limits), null));
    }

    public Task<SmtpReply?> ReserveRecipientAsync(MessageTicket ticket, CancellationToken cancellationToken)
    {
        var perMessage = _limits.RecipientsPerMessage!.Value;
        if (ticket.ReservedRecipients >= perMessage)
        {
            return Task.FromResult<SmtpReply?>(QuotaReplies.For(new QuotaExceeded(RefusalKind.RecipientsPerMessage, ticket.ReservedRecipients, perMessage), ticket.User));
        }

        ticket.ReservedRecipients++;
        return Task.FromResult<SmtpReply?>(null);
    }

    public void ReleaseRecipient(MessageTicket ticket) => ticket.ReservedRecipients--;

    public Task<SmtpReply?> BeginDataAsync(MessageTicket ticket, TransactionEvent pending, CancellationToken cancellationToken) => Task.FromResult<SmtpReply?>(null);

    public Task FinishAsync(MessageTicket ticket, TransactionEvent final, CancellationToken cancellationToken) => Task.CompletedTask;
}
