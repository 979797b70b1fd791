# ******************************
# ソケット-サーバ機能(001)
# ******************************
# The seed blog's server ("クライアントサーバのパケットの流れをPythonのプログラムで観察してみた").
# Lines marked "# [added]" are not shown in the blog post and were filled in the obvious way.
# モジュールのインポート
# 低水準ネットワークインターフェース
import socket
# グローバル変数
# ダイナミックポート番号(49152~65535)
D_PORT_NO = 49152
# クライアントアクセス回数
access_cnt = 0
# ソケットの作成
# AF_INET:ネットワーク層はIPv4を利用
# SOCK_STREAM:TCPプロトコルを利用する
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# [added] 再起動時に TIME_WAIT のポートを再利用できるようにする (restart without EADDRINUSE)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# 接続させたいホスト名(またはアドレス)とポート番号を設定
server.bind(("127.0.0.2", D_PORT_NO))
# クライアントからの接続の待ち受け開始
# 最大接続数は2に設定
server.listen(2)
# [added] 待ち受け開始を知らせる (tells a test harness the port is ready)
print("listening on 127.0.0.2:{}".format(D_PORT_NO), flush=True)
# クライアント接続時の処理
while True:
    # 通信用ソケットの取得
    # client:クライアントのソケット情報
    # addr(アドレス):リモート接続のアドレス
    client, addr = server.accept()
    # [added] アクセス回数のカウント (count the access)
    access_cnt += 1
    # [added] クライアントからのメッセージの受信 (receive the message, one recv(4096))
    data = client.recv(4096)
    # [added] 受信内容の表示 (print it)
    message = data.decode("UTF-8", errors="backslashreplace")
    print("#{} {}: received {} bytes: {!r}".format(access_cnt, addr, len(data), message), flush=True)
    # [added] アクセス回数を含む返信の送信 (reply with the access count)
    client.sendall('Hello, client #{}! Received {} bytes: "{}"'.format(access_cnt, len(data), message).encode("UTF-8"))
    # クライアントの接続を切断
    client.close()
