using System.Net;
using System.Text.Json;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Smtp.Session;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Interceptor.Tests.Daemon.Intercept;

public class SessionLogScopeTests
{
    private static readonly ConnectionOrigin Alice = new(1001, "alice", IPEndPoint.Parse("127.0.0.1:40000"), IPEndPoint.Parse("203.0.113.5:25"));

    [Test]
    public async Task Lines_inside_a_session_carry_its_uid_user_and_session_id_as_json_fields_whichever_component_writes_them()
    {
        var lines = new JsonLines();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(lines));
        var session = loggers.CreateLogger("session");
        var policy = loggers.CreateLogger("policy");

        using (session.BeginSession(42, Alice))
        {
            await Task.Yield(); // the scope flows with the session's async work
            session.SessionFailed(new InvalidOperationException("boom"), 42);
            policy.PolicyRefused(Alice.Uid, Alice.User, RefusalKind.MessagesPerHour, 3, 3);
        }

        session.SessionFailed(new InvalidOperationException("after"), 43);

        var (failed, refused, after) = (lines.All[0], lines.All[1], lines.All[2]);
        Assert.Multiple(() =>
        {
            // "session {SessionId} failed" names neither uid nor user: the scope does.
            Assert.That(failed.GetProperty("State").TryGetProperty("Uid", out _), Is.False, "not in the template's own fields");
            var scope = failed.GetProperty("Scopes")[0];
            Assert.That(scope.GetProperty("Uid").GetUInt32(), Is.EqualTo(1001));
            Assert.That(scope.GetProperty("User").GetString(), Is.EqualTo("alice"));
            Assert.That(scope.GetProperty("SessionId").GetInt32(), Is.EqualTo(42));
            Assert.That(scope.GetProperty("Message").GetString(), Is.EqualTo("session 42 uid=1001 user=alice"));

            // Another component's line in the same session: its own fields unchanged, the session's beside them.
            Assert.That(refused.GetProperty("Category").GetString(), Is.EqualTo("policy"));
            Assert.That(refused.GetProperty("Message").GetString(), Is.EqualTo("policy refused uid=1001 user=alice: MessagesPerHour 3/3"));
            Assert.That(refused.GetProperty("State").GetProperty("Uid").GetUInt32(), Is.EqualTo(1001));
            Assert.That(refused.GetProperty("Scopes")[0].GetProperty("SessionId").GetInt32(), Is.EqualTo(42));

            Assert.That(after.GetProperty("Scopes").GetArrayLength(), Is.Zero, "the scope ends with the session");
        });
    }

    [Test]
    public void The_scope_text_cannot_carry_a_second_uid_or_a_line_break_from_a_user_name()
    {
        var scope = new SessionLogScope(7, 1002, "bob uid=0\nuser=root");

        Assert.Multiple(() =>
        {
            Assert.That(scope.ToString(), Does.StartWith("session 7 uid=1002 user=bob%20uid%3D0%0Auser%3Droot"));
            Assert.That(scope.Single(f => f.Key == "User").Value, Is.EqualTo("bob uid=0\nuser=root"), "the field keeps the exact name");
        });
    }

    [Test]
    public void The_per_connection_debug_line_allocates_nothing_when_debug_is_off()
    {
        using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Information).AddProvider(new JsonLines()));
        var logger = loggers.CreateLogger("session");
        logger.SessionStarted(Alice.Uid, Alice.User, Alice.Client, Alice.OriginalDestination); // JIT and first-use caches

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            logger.SessionStarted(Alice.Uid, Alice.User, Alice.Client, Alice.OriginalDestination);
        }

        var generated = GC.GetAllocatedBytesForCurrentThread() - before;

        // What the line cost before it was generated: a params array and a boxed uid per connection.
        before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
#pragma warning disable CA1848, CA1873 // the old call form, measured on purpose
            logger.LogDebug("session uid={Uid} user={User} client={Client} dst={Destination}", Alice.Uid, Alice.User, Alice.Client, Alice.OriginalDestination);
#pragma warning restore CA1848, CA1873
        }

        var adHoc = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Multiple(() =>
        {
            Assert.That(generated, Is.Zero);
            Assert.That(adHoc, Is.GreaterThan(0), "the measurement can see an allocation");
        });
    }

    /// <summary>The daemon's JSON line (JsonLogFormat through the JournalPriorityFormatter's JSON formatter), kept per line.</summary>
    private sealed class JsonLines : ILoggerProvider, ISupportExternalScope
    {
        private readonly JournalPriorityFormatter _formatter = new(JsonLogFormat.Configure);
        private readonly List<JsonElement> _lines = [];
        private IExternalScopeProvider? _scopes;

        public IReadOnlyList<JsonElement> All
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Writer(this, categoryName);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private void Add(string line)
        {
            // Without the journal's priority prefix ("<3>"), the line is the console's JSON object.
            using var json = JsonDocument.Parse(line[(line.IndexOf('>', StringComparison.Ordinal) + 1)..]);
            lock (_lines)
            {
                _lines.Add(json.RootElement.Clone());
            }
        }

        private sealed class Writer(JsonLines owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => owner._scopes?.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                using var text = new StringWriter();
                owner._formatter.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter), owner._scopes, text);
                owner.Add(text.ToString());
            }
        }
    }
}
