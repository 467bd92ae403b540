namespace Interceptor.Tests.Linux;

/// <summary>
/// Runs a function on a thread of its own that first changes something the kernel keeps per thread (its network
/// namespace, its capabilities), and then ends: no other thread of the test run is changed. A failure is rethrown on the
/// test's thread.
/// </summary>
internal static class OnThreadOfItsOwn
{
    public static T Run<T>(string what, Action change, Func<T> function)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                change();
                result = function();
            }
#pragma warning disable CA1031 // rethrown on the test's thread
            catch (Exception e)
#pragma warning restore CA1031
            {
                error = e;
            }
        });
        thread.Start();
        thread.Join();
        return error is null ? result : throw new InvalidOperationException($"on the thread {what}: {error.Message}", error);
    }
}
