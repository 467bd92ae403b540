namespace Interceptor.IntegrationTests;

/// <summary>Waiting for something another process does (a delivery, a log line), checked every 100 ms.</summary>
internal static class Poll
{
    /// <summary>True once <paramref name="condition"/> holds; false if it still does not after <paramref name="timeout"/>.</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(100);
        }

        return true;
    }
}
