using Interceptor.Daemon.Domains;

namespace Interceptor.Tests.Daemon.Domains;

/// <summary>TXT answers from a table: a name not in it has no record; <see cref="Silent"/> names never answer.</summary>
internal sealed class FakeTxtLookup : ITxtLookup
{
    public Dictionary<string, TxtAnswer> Answers { get; } = new(StringComparer.OrdinalIgnoreCase);

    public HashSet<string> Silent { get; } = new(StringComparer.OrdinalIgnoreCase);

    public List<string> Asked { get; } = [];

    public FakeTxtLookup Add(string name, params string[] records)
    {
        Answers[name] = TxtAnswer.Of(records);
        return this;
    }

    public async Task<TxtAnswer> TxtAsync(string name, CancellationToken cancellationToken)
    {
        lock (Asked)
        {
            Asked.Add(name);
        }

        if (Silent.Contains(name))
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        return Answers.GetValueOrDefault(name) ?? TxtAnswer.None;
    }
}
