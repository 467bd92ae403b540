namespace Interceptor.Linux;

/// <summary>The kernel's TCP states (include/net/tcp_states.h), as idiag_state and /proc/net/tcp's "st" carry them.</summary>
public enum TcpState : byte
{
    Established = 1,
    SynSent = 2,
    SynReceived = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynReceived = 12,
}
