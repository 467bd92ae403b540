namespace Interceptor.Core.Events;

/// <summary>Where finished transactions go: the log now, the accounting store later.</summary>
public interface ITransactionRecorder
{
    void Record(TransactionEvent transaction);
}
