# ******************************
# ソケット-クライアント機能(002)
# TCPクライアント
# ******************************
# The seed blog's client ("クライアントサーバのパケットの流れをPythonのプログラムで観察してみた").
# Lines marked "# [added]" are not shown in the blog post and were filled in the obvious way.
# モジュールのインポート
import socket
# グローバル変数
# 接続先ホストの名前(localhost)
HOST = "127.0.0.2"
# サーバ側のダイナミックポート番号(49152~65535)
D_PORT_NO = 49152
# 受信バッファの大きさ
BUFSIZE = 4096
# ソケットの作成
# AF_INET:ネットワーク層はIPv4を利用
# SOCK_STREAM:TCPプロトコルを利用する
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# サーバとの接続
client.connect((HOST, D_PORT_NO))
# [added] 送信するメッセージの入力 (the message, read from stdin)
sending_message = input()
# メッセージの送信
client.sendall(sending_message.encode("UTF-8"))
# サーバからのメッセージの受信
server_reception_data = client.recv(BUFSIZE)
# [added] 受信したメッセージの表示 (print the reply)
print(server_reception_data.decode("UTF-8"))
# サーバーの接続を切断
client.close()
