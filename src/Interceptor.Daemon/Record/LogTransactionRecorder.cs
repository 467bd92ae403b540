using System.Collections;
using System.Globalization;
using Interceptor.Core.Events;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Record;

/// <summary>One structured log line per transaction, naming the user: what an admin greps for first.</summary>
/// <remarks>
/// The readable message and the JSON fields differ on purpose: the message is for eyes and grep, so the client's
/// sender is percent-encoded (<see cref="FieldText.PercentEncode"/>) and the upstream's reply quoted
/// (<see cref="FieldText.Quote"/>); a sender <c>"x> uid=0 user=root from=&lt;y"@bank.example</c> cannot add fields
/// to it. The JSON fields (State.Sender, State.Reply, …) keep the exact values, escaped by the JSON writer.
/// </remarks>
public sealed class LogTransactionRecorder(ILogger logger) : ITransactionRecorder
{
    private static readonly EventId TransactionEventId = new(10, "Transaction");

    private const string Format =
        "transaction {Id} uid={Uid} user={User} from=<{Sender}> recipients={Recipients} size={SizeBytes} dst={OriginalDestination} upstream={Upstream} reply={Reply} duration_ms={DurationMs}";

    // A sub-UID's mail: the owner is uid/user (whom the abuse desk calls); the real sub-UID is named too, so nothing is hidden.
    private const string SubordinateFormat =
        "transaction {Id} uid={Uid} user={User} subuid={SubUid} from=<{Sender}> recipients={Recipients} size={SizeBytes} dst={OriginalDestination} upstream={Upstream} reply={Reply} duration_ms={DurationMs}";

    // A pool relay carried it (issue 15): its name after the upstream, which is the relay's endpoint.
    private const string RelayPart = " upstream={Upstream} relay={Relay} ";

    private static string Template(TransactionEvent t)
    {
        var template = t.SubordinateUid is null ? Format : SubordinateFormat;
        return t.Relay is null ? template : template.Replace(" upstream={Upstream} ", RelayPart, StringComparison.Ordinal);
    }

    public void Record(TransactionEvent transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (transaction.Unsent is not null and not UnsentKind.RefusedAtData and not UnsentKind.AbandonedInData)
        {
            // Ended before DATA: a client can make thousands a second. The store tallies them and logs one line per user,
            // kind and minute when it writes the tally. (Those that reached DATA have their row and their line.)
            return;
        }

        // The line's state is built per transaction: not at all when nobody reads it.
        if (!logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        logger.Log(LogLevel.Information, TransactionEventId, new TransactionLine(transaction), null, static (line, _) => line.ToString());
    }

    /// <summary>The fields as the JSON formatter writes them (same names and types as the message template's), and the readable message.</summary>
    private sealed class TransactionLine(TransactionEvent t) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        private readonly KeyValuePair<string, object?>[] _fields = Fields(t);

        // Filled in place, sized first: a list grown and copied for every relayed message was 3% of the daemon's
        // allocations under load (issue 19).
        private static KeyValuePair<string, object?>[] Fields(TransactionEvent t)
        {
            var fields = new KeyValuePair<string, object?>[11 + (t.SubordinateUid is null ? 0 : 1) + (t.Relay is null ? 0 : 1)];
            var at = 0;
            fields[at++] = new("Id", t.Id);
            fields[at++] = new("Uid", t.Uid);
            fields[at++] = new("User", t.User);
            if (t.SubordinateUid is { } subordinate)
            {
                fields[at++] = new("SubUid", subordinate);
            }

            fields[at++] = new("Sender", t.Sender);
            fields[at++] = new("Recipients", t.RecipientCount);
            fields[at++] = new("SizeBytes", t.SizeBytes);
            fields[at++] = new("OriginalDestination", t.OriginalDestination);
            fields[at++] = new("Upstream", t.Upstream);
            if (t.Relay is not null)
            {
                fields[at++] = new("Relay", t.Relay);
            }

            fields[at++] = new("Reply", t.Reply);
            fields[at++] = new("DurationMs", (long)t.Duration.TotalMilliseconds);
            fields[at] = new("{OriginalFormat}", Template(t));
            return fields;
        }

        public int Count => _fields.Length;

        public KeyValuePair<string, object?> this[int index] => _fields[index];

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_fields).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        // User names come from the passwd database (root's to write), ids and destinations from us: only the sender
        // and the reply are chosen by the client or its upstream.
        public override string ToString() => string.Create(
            CultureInfo.InvariantCulture,
            $"transaction {t.Id} uid={t.Uid} user={FieldText.PercentEncode(t.User)}{(t.SubordinateUid is { } sub ? $" subuid={sub}" : "")} from=<{FieldText.PercentEncode(t.Sender)}> recipients={t.RecipientCount} size={t.SizeBytes} dst={t.OriginalDestination} upstream={t.Upstream}{(t.Relay is null ? "" : " relay=" + t.Relay)} reply={FieldText.Quote(t.Reply)} duration_ms={(long)t.Duration.TotalMilliseconds}");
    }
}
