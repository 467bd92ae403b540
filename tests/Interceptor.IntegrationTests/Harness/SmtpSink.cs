namespace Interceptor.IntegrationTests;

/// <summary>
/// Postfix's own smtp-sink as the upstream, so at least one test relays to a real MTA component
/// rather than only to our fake. Its dump files start with X-Client-*/X-Helo-Args/X-Mail-Args/X-Rcpt-Args
/// lines and store the message with LF line endings.
/// </summary>
public sealed class SmtpSink : IAsyncDisposable
{
    private readonly BackgroundProcess _process;

    private SmtpSink(BackgroundProcess process, string directory)
    {
        _process = process;
        Directory = directory;
    }

    public string Directory { get; }

    public static async Task<SmtpSink> StartAsync(NetworkNamespace ns, TestDirectory dir, string listen = NetworkNamespace.MxAddress4 + ":25")
    {
        // smtp-sink drops to nobody before writing, so the dump directory must be writable by it.
        var output = dir.Subdirectory("smtp-sink", worldWritable: true);
        var process = ns.StartBackground("smtp-sink", "smtp-sink", ["-u", "nobody", "-d", output + "/%M.", listen, "100"]);
        var sink = new SmtpSink(process, output);
        if (!await ns.WaitForListenerAsync(listen, TimeSpan.FromSeconds(15)))
        {
            var transcript = process.Transcript();
            await sink.DisposeAsync();
            Assert.Fail("smtp-sink did not start listening on " + listen + ":\n" + transcript);
        }

        return sink;
    }

    /// <summary>The dump files written so far (one per transaction), as text.</summary>
    public IReadOnlyList<string> Dumps() =>
        [.. System.IO.Directory.GetFiles(Directory).Order(StringComparer.Ordinal).Select(File.ReadAllText)];

    /// <summary>Waits until at least <paramref name="count"/> dumps exist: smtp-sink may close the file just after replying.</summary>
    public async Task<IReadOnlyList<string>> WaitForDumpsAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (System.IO.Directory.GetFiles(Directory).Length < count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        return Dumps();
    }

    public string Transcript() => _process.Transcript();

    public async ValueTask DisposeAsync() => await _process.DisposeAsync();
}
