using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>
/// What the command handlers of one session share, none of it the protocol state: the client, the upstream, the
/// clock, where transactions end, and this user's limits. The state and the open transaction live in
/// <see cref="InboundSession"/> alone; handlers get the transaction as an argument and say how they ended.
/// </summary>
internal sealed record SessionContext(
    ConnectionOrigin Origin,
    InterceptorOptions Options,
    ClientChannel Client,
    SessionTimeouts Timeouts,
    UpstreamLink Upstream,
    TransactionSink Sink,
    MessagePipeline Pipeline,
    ILogger Logger)
{
    /// <summary>This user's per-message bounds, from the policy (the size advertised in EHLO and enforced in DATA).</summary>
    public QuotaLimits Limits { get; } = Sink.Policy.LimitsFor(Origin.User);

    public long MaxMessageSize => Limits.MessageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes!.Value;

    public IMailPolicy Policy => Sink.Policy;

    /// <summary>STARTTLS towards the client (ClientTls.Mode Mint); null when it is not offered.</summary>
    public Tls.ClientTlsServer? Tls { get; init; }
}

/// <summary>
/// How a command ended, for the state table: one that took effect (MAIL started a transaction, RCPT added a recipient,
/// DATA ended the transaction, whatever its outcome) moves to the rule's next state; <see cref="Close"/> ends the session.
/// </summary>
internal readonly record struct StepResult(bool TookEffect, bool Close = false)
{
    public static StepResult Success => new(true);

    public static StepResult Failure => new(false);

    public static StepResult Closed => new(false, Close: true);

    public static StepResult Of(Interceptor.Core.Replies.SmtpReply reply) => new(reply.IsPositive);
}
