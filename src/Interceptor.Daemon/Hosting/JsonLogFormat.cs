using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging.Console;

namespace Interceptor.Daemon.Hosting;

/// <summary>The daemon's JSON log line: one object per line, UTC millisecond timestamps, scopes included.</summary>
public static class JsonLogFormat
{
    public static void Configure(JsonConsoleFormatterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
        options.UseUtcTimestamp = true;
        options.JsonWriterOptions = new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

        // A line written inside a session carries the session's Uid, User and SessionId in "Scopes" (see InterceptLog.BeginSession),
        // whatever component wrote it; State keeps the line's own fields as they always were.
        options.IncludeScopes = true;
    }
}
