using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>
/// What a session asks at each step, and the only source of its limits: suspension and the connection cap at connect,
/// message quotas at MAIL, recipient quotas at RCPT, a durable "pending" record before DATA is relayed (fail closed:
/// no record, no relay), and the accounting of what really left at the end. <see cref="MailPolicy"/> is the daemon's;
/// <see cref="UnlimitedMailPolicy"/> admits everything.
/// </summary>
public interface IMailPolicy
{
    /// <summary>The per-message bounds for this user (message size, recipients per message), as the session advertises them.</summary>
    QuotaLimits LimitsFor(string user);

    /// <summary>Null when the user may open one more session (call <see cref="CloseConnection"/> after it), else the refusal.</summary>
    Task<SmtpReply?> OpenConnectionAsync(uint uid, string user, CancellationToken cancellationToken);

    void CloseConnection(uint uid);

    /// <summary>At MAIL: the ticket for the new message, or the refusal.</summary>
    Task<(MessageTicket? Ticket, SmtpReply? Refusal)> StartMessageAsync(uint uid, string user, long? declaredSize, CancellationToken cancellationToken);

    /// <summary>At RCPT, before relaying it: null when the recipient fits the user's quotas.</summary>
    Task<SmtpReply?> ReserveRecipientAsync(MessageTicket ticket, CancellationToken cancellationToken);

    /// <summary>The upstream refused the recipient: it does not count.</summary>
    void ReleaseRecipient(MessageTicket ticket);

    /// <summary>Before DATA goes upstream: the transaction is on disk as pending, or the client gets the refusal.</summary>
    Task<SmtpReply?> BeginDataAsync(MessageTicket ticket, TransactionEvent pending, CancellationToken cancellationToken);

    /// <summary>The transaction ended (delivered, refused, deferred or abandoned): settle quotas, record, maybe suspend.</summary>
    Task FinishAsync(MessageTicket ticket, TransactionEvent final, CancellationToken cancellationToken);
}
