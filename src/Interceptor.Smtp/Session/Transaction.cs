using System.Diagnostics;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Session;

/// <summary>One mail transaction in progress: from an accepted MAIL to the reply after DATA (or its abandonment).</summary>
internal sealed class Transaction(EnvelopeCommand mail, Interceptor.Core.Policy.MessageTicket ticket)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    /// <summary>Time-ordered, unique; the same id is in the trace header and the log line.</summary>
    public string Id { get; } = Guid.CreateVersion7().ToString("N");

    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    public EnvelopeCommand Mail { get; } = mail;

    /// <summary>The quota claim of this message.</summary>
    public Interceptor.Core.Policy.MessageTicket Ticket { get; } = ticket;
    public List<string> Recipients { get; } = [];
    public long SizeBytes { get; set; }

    /// <summary>Set once DATA is about to go upstream (after the pending row): from then on it is stored, not tallied.</summary>
    public bool DataStarted { get; set; }

    /// <summary>
    /// Set when we refused the message for what the client sent (a data problem) and aborted the upstream's DATA: nothing
    /// was relayed, so it counts towards suspension like a transaction that never reached DATA (its Pending row stays).
    /// </summary>
    public bool DataRefused { get; set; }

    /// <summary>The upstream's last refusal of a RCPT in this transaction, if any.</summary>
    public Interceptor.Core.Replies.SmtpReply? LastRecipientRefusal { get; set; }
    public TimeSpan Elapsed => _clock.Elapsed;
}
