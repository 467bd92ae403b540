namespace Interceptor.Core.Events;

/// <summary>Where finished transactions go: the JSON log line and the metrics (the state store is written by MailPolicy).</summary>
public interface ITransactionRecorder
{
    void Record(TransactionEvent transaction);

    /// <summary>
    /// An upstream session failed at <paramref name="stage"/> ("connect", "command", "data"): a network fault or a timeout,
    /// not an SMTP reply (the metrics count it; nothing else needs to).
    /// </summary>
    void UpstreamFailed(string stage)
    {
    }
}
